package discord

import "time"

// Hooks for the external tests in package discord_test.

// CommandTargetForTest is the target the adapter makes for a slash
// command in channel.
func CommandTargetForTest(channel string, issued time.Time, app, token string) string {
	return target{channel: channel, kind: kindCommand, issued: issued, app: app, token: token}.String()
}

// OriginalIDForTest is the message id Send returns for an original
// interaction response.
func OriginalIDForTest(id string) string { return string(prefixOriginal) + id }
