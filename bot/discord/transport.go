package discord

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/bwmarrin/discordgo"
)

// restIdleConns is how many idle connections to Discord's REST API are
// kept for reuse.
const restIdleConns = 32

// rewriteTransport sends discordgo's REST calls, built from its package
// endpoint variables (https://discord.com/api/v9/...), to the configured
// base URL instead, leaving those variables alone. Everything else (the
// CDN) passes through unchanged.
type rewriteTransport struct {
	from string   // discordgo's API root path, like /api/v9/
	host string   // discordgo's API host
	to   *url.URL // the configured base, path without a trailing slash
	next http.RoundTripper
}

func newRewriteTransport(base string, next http.RoundTripper) (*rewriteTransport, error) {
	src, err := url.Parse(discordgo.EndpointAPI)
	if err != nil {
		return nil, fmt.Errorf("parse discordgo endpoint: %w", err)
	}
	to, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("parse discord.api_base_url: %w", err)
	}
	if next == nil {
		// Every REST call goes to one host, and net/http keeps only 2
		// idle connections per host by default: with many conversations
		// at once almost every call opened a new (TLS) connection.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = restIdleConns
		next = tr
	}
	return &rewriteTransport{from: src.Path, host: src.Host, to: to, next: next}, nil
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.EqualFold(req.URL.Host, t.host) || !strings.HasPrefix(req.URL.Path, t.from) {
		return t.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = t.to.Scheme, t.to.Host
	u.Path = t.to.Path + "/" + strings.TrimPrefix(req.URL.Path, t.from)
	if req.URL.RawPath != "" {
		u.RawPath = t.to.Path + "/" + strings.TrimPrefix(req.URL.RawPath, t.from)
	}
	out.URL, out.Host = &u, t.to.Host
	return t.next.RoundTrip(out)
}

// scrub removes URLs from transport errors: interaction tokens are in the
// path of the webhook routes and must not reach the logs.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redactPath(ue.URL), ue.Err)
	}
	return err
}

// redactPath keeps a URL's route, dropping tokens after /webhooks/<app>/
// and /interactions/<id>/.
func redactPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if (s == "webhooks" || s == "interactions") && i+2 < len(segs) {
			segs[i+2] = "…"
		}
	}
	return u.Host + strings.Join(segs, "/")
}
