package discord

import "testing"

// keyLocks keeps an entry only while a key is held or awaited, so its
// memory does not grow with every thread ever opened.
func TestKeyLocksForgetFreeKeys(t *testing.T) {
	var k keyLocks
	unlockA := k.lock("a")
	unlockB := k.lock("b") // another key does not wait for a
	if len(k.m) != 2 {
		t.Fatalf("held keys = %d, want 2", len(k.m))
	}
	unlockA()
	unlockB()
	relock := k.lock("a") // a free key can be taken again
	relock()
	if len(k.m) != 0 {
		t.Fatalf("free keys kept: %d", len(k.m))
	}
}
