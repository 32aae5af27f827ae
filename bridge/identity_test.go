package bridge

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
)

var testSecret = bytes.Repeat([]byte{7}, 32)

func mustIdentities(tb testing.TB, secret []byte) *Identities {
	tb.Helper()
	ids, err := NewIdentities(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

func TestPseudoAddressProperties(t *testing.T) {
	ids := mustIdentities(t, testSecret)
	ula := netip.MustParsePrefix("fd00::/8")
	seen := map[netip.Prefix]string{}
	for i := 0; i < 20000; i++ {
		acct := fmt.Sprintf("discord:%d", 100000000000000000+i)
		if i%2 == 1 {
			acct = fmt.Sprintf("matrix:@user%d:example.org", i)
		}
		addr := ids.PseudoAddress(acct)
		s := addr.String()
		if !addr.Is6() || !ula.Contains(addr) {
			t.Fatalf("%s -> %s: not in fd00::/8", acct, s)
		}
		if len(s) > 39 {
			t.Fatalf("%s -> %s: %d chars > 39", acct, s, len(s))
		}
		if back, err := netip.ParseAddr(s); err != nil || back != addr {
			t.Fatalf("%s does not round-trip: %v", s, err)
		}
		p64 := netip.PrefixFrom(addr, 64).Masked()
		if other, dup := seen[p64]; dup {
			t.Fatalf("%s and %s share the /64 %s", acct, other, p64)
		}
		seen[p64] = acct
	}
}

func TestPseudoAddressStableAndKeyed(t *testing.T) {
	a := mustIdentities(t, testSecret).PseudoAddress("discord:42")
	b := mustIdentities(t, append([]byte(nil), testSecret...)).PseudoAddress("discord:42")
	if a != b {
		t.Fatalf("same secret, different address: %s vs %s", a, b)
	}
	// Pinned: a change here changes every user's Horde identity.
	if got, want := a.String(), "fd5b:a008:bca2:d502:505f:28ca:b235:38b8"; got != want {
		t.Errorf("pinned address changed: got %s, want %s", got, want)
	}
	other := mustIdentities(t, bytes.Repeat([]byte{8}, 32)).PseudoAddress("discord:42")
	if other == a {
		t.Error("another server secret gives the same address")
	}
	if mustIdentities(t, testSecret).PseudoAddress("matrix:42") == a {
		t.Error("platform is not part of the identity")
	}
}

func TestProxiedFor(t *testing.T) {
	ids := mustIdentities(t, testSecret)
	tests := []struct {
		name string
		p    Principal
		want string
	}{
		{name: "chat user", p: Principal{Platform: "discord", UserID: "42"}, want: ids.PseudoAddress("discord:42").String()},
		{name: "v1 token user", p: Principal{Platform: "discord", UserID: "42", ClientIP: "203.0.113.5"}, want: ids.PseudoAddress("discord:42").String()},
		{name: "anonymous v1 ipv4", p: Principal{Platform: "v1", ClientIP: "203.0.113.5"}, want: "203.0.113.5"},
		{name: "anonymous v1 mapped ipv4", p: Principal{Platform: "v1", ClientIP: "::ffff:203.0.113.5"}, want: "203.0.113.5"},
		{name: "anonymous v1 ipv6", p: Principal{Platform: "v1", ClientIP: "2001:db8::1"}, want: "2001:db8::1"},
		{name: "garbage ip", p: Principal{Platform: "v1", ClientIP: "not-an-ip"}, want: ""},
		{name: "nobody", p: Principal{Platform: "v1"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids.ProxiedFor(tt.p); got != tt.want {
				t.Errorf("ProxiedFor = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewIdentitiesRejectsShortSecret(t *testing.T) {
	if _, err := NewIdentities([]byte("short")); err == nil {
		t.Fatal("short secret accepted")
	}
}

func TestPrincipalStringHasNoKey(t *testing.T) {
	p := Principal{Platform: "v1", APIKey: "secret-horde-key", ClientIP: "203.0.113.5"}
	if s := p.String(); s != "v1:ip" {
		t.Errorf("String = %q", s)
	}
}
