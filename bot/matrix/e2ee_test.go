package matrix_test

import (
	"strings"
	"testing"

	"github.com/hordechat/hordechat/bot/matrix"
)

func TestEncryptionNeedsAPlaceForItsKeys(t *testing.T) {
	c := matrix.DefaultConfig()
	c.Homeserver, c.UserID, c.AccessToken = "https://hs.test", "@bot:hs.test", "tok"
	if c.Encryption {
		t.Error("matrix.encryption is on by default")
	}
	c.Encryption = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "matrix.encryption") {
		t.Errorf("Validate = %v, want a matrix.encryption error without a session file or crypto database", err)
	}
	c.SessionFile = "/data/matrix-session.json"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with a session file = %v", err)
	}
}
