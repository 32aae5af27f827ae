// Package discord connects hordechat to Discord through discordgo: gateway
// events become bot.Engine calls, and the Adapter implements bot.Platform
// (with Editor, Typer, Redactor and FileSender) for the answers.
//
// # Wiring
//
// New does not register the adapter with the engine. The order is:
//
//	engine := bot.NewEngine(...)
//	adapter := discord.New(cfg, engine, log)
//	engine.AddPlatform(adapter)    // before the bridge starts: resumed jobs deliver through it
//	bridge.Start(ctx)
//	go adapter.Run(ctx)            // gateway, slash commands; returns when ctx ends
//
// and shutdown: cancel Run's ctx and wait for it (no new events), then
// engine.Close, then bridge.Close. The adapter's REST calls work before Run
// and after it, so answers delivered meanwhile still go out.
//
// # Where the bot answers
//
//   - A mention in a text or announcement channel opens a public thread
//     from the message (discord.threads); the thread, whose id is the
//     message id, is the conversation discord:<guild>:<thread>. Messages in
//     a thread the bot started continue it without a mention (the thread's
//     owner is the bot user, so this holds after a restart).
//   - A DM channel is the conversation discord:dm:<channel>.
//   - A reply to one of the bot's messages continues the channel's
//     conversation discord:<guild>:<channel>.
//   - Slash commands and buttons use the conversation of the channel,
//     thread or DM they are used in.
//
// For the allow and deny lists a thread counts as its parent channel
// (bot.Incoming.Channel is the parent, ConversationID the thread).
//
// # Slash commands
//
// Every bot.Command is a slash command, bulk-overwritten at start
// (globally, or in discord.guild_id; shard 0 only). Commands are deferred at
// once and answered by editing the deferred response; for /chat the
// engine's placeholder becomes that response and later edits go through the
// interaction webhook. The interaction token lives 15 minutes: after that,
// answers are channel messages and an edit of an interaction message posts
// a channel message instead (then edits that one). Secret commands (/link)
// open a modal; its values are never logged nor echoed.
//
// # Targets and message ids
//
// bot.Incoming.Target strings are compact and journaled (see target.go):
// a channel id, optionally with the message to reply to or to open a thread
// from, or with the interaction's application id, token and issue time.
// Message ids returned for interaction messages carry a one-letter prefix
// ("o" original response, "f" follow-up) so edits pick the right endpoint,
// even after a restart.
//
// # Sending
//
// Every message goes out with allowed_mentions {"parse": []}: nothing the
// bot says pings anyone. Outgoing.Key becomes a 25-character nonce with
// enforce_nonce, so a redelivery after a restart returns the message posted
// before. Buttons are one or two action rows with custom ids "hc:b:<id>".
package discord
