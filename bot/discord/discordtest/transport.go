package discordtest

import (
	"net/http"
	"net/url"
	"strings"
)

// rewrittenHosts are the hosts RewriteTransport sends to the base URL:
// the API, and the CDN so that attachment URLs work against the fake.
var rewrittenHosts = map[string]bool{
	"discord.com":          true,
	"cdn.discordapp.com":   true,
	"media.discordapp.net": true,
}

// RewriteTransport returns a RoundTripper that sends every request for
// https://discord.com/ (and Discord's CDN hosts cdn.discordapp.com and
// media.discordapp.net) to base instead: scheme and host are replaced, the
// path and query are kept, and a path in base is prepended. Other requests
// go to next unchanged. next nil means http.DefaultTransport. The request
// is cloned, never modified.
//
// discordgo builds every REST URL from package variables such as
// discordgo.EndpointAPI; with
//
//	session.Client = &http.Client{Transport: discordtest.RewriteTransport(fake.URL, nil)}
//
// its REST calls reach the fake without touching those variables, and the
// gateway URL it then gets from GET /gateway is the fake's.
func RewriteTransport(base string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return roundTripFunc(func(*http.Request) (*http.Response, error) {
			return nil, &url.Error{Op: "rewrite", URL: base, Err: errBadBase}
		})
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if !rewrittenHosts[strings.ToLower(req.URL.Hostname())] {
			return next.RoundTrip(req)
		}
		out := req.Clone(req.Context())
		nu := *req.URL
		nu.Scheme, nu.Host = u.Scheme, u.Host
		if prefix != "" {
			nu.Path = prefix + nu.Path
			if nu.RawPath != "" {
				nu.RawPath = prefix + nu.RawPath
			}
		}
		out.URL = &nu
		out.Host = u.Host
		return next.RoundTrip(out)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type badBase struct{}

func (badBase) Error() string { return "discordtest: RewriteTransport needs an absolute base URL" }

var errBadBase error = badBase{}
