package main

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// secretSet holds the secrets a test planted, by name, and finds them in
// any bytes in the forms a leak takes: plain, base64 (standard or URL
// alphabet, padded or not, at any alignment inside a longer encoding), hex
// (either case) and URL-encoded.
type secretSet struct {
	names []string
	forms map[string][]string // name -> encodings
}

func newSecretSet() *secretSet { return &secretSet{forms: map[string][]string{}} }

// add plants a secret; values shorter than 8 bytes would match by chance.
func (s *secretSet) add(t *testing.T, name, value string) {
	t.Helper()
	if len(value) < 8 {
		t.Fatalf("secret %s is too short to search for", name)
	}
	if _, dup := s.forms[name]; !dup {
		s.names = append(s.names, name)
	}
	s.forms[name] = encodings([]byte(value))
}

// encodings lists the forms of v to search for.
func encodings(v []byte) []string {
	set := map[string]bool{
		string(v):                              true,
		hex.EncodeToString(v):                  true,
		strings.ToUpper(hex.EncodeToString(v)): true,
		url.QueryEscape(string(v)):             true,
		url.PathEscape(string(v)):              true,
	}
	// Inside a longer base64 text the secret starts at one of three byte
	// alignments; keep only the characters that depend on it alone.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for k := 0; k < 3; k++ {
			padded := append(make([]byte, k), v...)
			e := enc.EncodeToString(padded)
			from := (8*k + 5) / 6
			to := 8 * len(padded) / 6
			if to-from >= 8 {
				set[e[from:to]] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// find returns the names of the secrets data holds, except those allowed.
func (s *secretSet) find(data []byte, allowed ...string) []string {
	text := string(data)
	var found []string
	for _, name := range s.names {
		if contains(allowed, name) {
			continue
		}
		for _, f := range s.forms[name] {
			if strings.Contains(text, f) {
				found = append(found, name)
				break
			}
		}
	}
	return found
}

// check fails the test when data (described by where) holds a secret
// other than the allowed ones.
func (s *secretSet) check(t *testing.T, where string, data []byte, allowed ...string) {
	t.Helper()
	if found := s.find(data, allowed...); len(found) > 0 {
		t.Errorf("%s holds %s", where, strings.Join(found, ", "))
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// scanDir checks every file under dir and returns what it found there,
// by path relative to dir. allowed lists secrets a given file may hold.
func (s *secretSet) scanDir(t *testing.T, when, dir string, allowed map[string][]string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, rel)
		s.check(t, when+": file "+rel, raw, allowed[rel]...)
		return nil
	})
	if err != nil {
		t.Fatalf("scan %s: %v", dir, err)
	}
	return files
}

func TestSecretEncodingsFindSecretsInsideBase64(t *testing.T) {
	s := newSecretSet()
	s.add(t, "token", "hc_secret-token-value-1234")
	for i := 0; i < 3; i++ {
		blob := []byte(strings.Repeat("x", i) + `{"t":"hc_secret-token-value-1234"}`)
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
			if got := s.find([]byte(enc.EncodeToString(blob))); len(got) != 1 {
				t.Errorf("alignment %d: not found in %s", i, enc.EncodeToString(blob))
			}
		}
	}
	if got := s.find([]byte(hex.EncodeToString([]byte("a hc_secret-token-value-1234")))); len(got) != 1 {
		t.Error("not found in hex")
	}
	if got := s.find([]byte("hc_secret-token-value-123")); len(got) != 0 {
		t.Error("found a prefix")
	}
}
