// Package discordtest is an in-process fake Discord for tests: an HTTP
// server that speaks REST API v9 (and v10) and the JSON gateway the way
// discordgo v0.29.0 expects, so that a real discordgo session, and the
// adapter built on it, can be driven end to end on loopback.
//
// It decodes requests with its own wire structs and field-by-field checks,
// and serializes messages with their components (discordgo.Message alone
// would drop them), so that an encoding bug in the client is caught here.
//
// # Use
//
//	fake := discordtest.New(t)
//	g := fake.AddGuild(&discordgo.Guild{Name: "test"})
//	ch := fake.AddChannel(&discordgo.Channel{GuildID: g.ID, Name: "general"})
//	alice := fake.AddUser(&discordgo.User{Username: "alice"})
//
//	dg, _ := discordgo.New("Bot " + fake.Token())
//	dg.Client = &http.Client{Transport: discordtest.RewriteTransport(fake.URL, nil)}
//	dg.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentMessageContent
//	_ = dg.Open() // GET /gateway, then ws://127.0.0.1:port/gateway: HELLO, IDENTIFY, READY, GUILD_CREATE
//
//	bot := fake.BotUser()
//	fake.SendMessage(discordtest.UserMessage{ChannelID: ch.ID, Author: alice, Content: "<@" + bot.ID + "> hi"})
//	m, _ := fake.WaitMessage(ctx, func(m discordtest.Message) bool { return m.Author.ID == bot.ID })
//
// Time only moves when the test says so: interaction deadlines (3 s to
// answer, 15 min for the token), nonce windows, timestamps and snowflakes
// follow the clockwork clock (a FakeClock at DefaultStart unless
// WithClock), moved by Advance. Nothing in the fake sleeps; every Wait*
// helper blocks on a condition and a context. Note that discordgo itself
// sleeps in real time: one second in every Close (so each reconnect costs
// a second) and RetryAfter on each 429.
//
// # What is simulated
//
//   - Authentication: "Authorization: Bot <token>" on every route but
//     /gateway, the interaction callback and the webhook-token routes;
//     otherwise 401 {"message": "401: Unauthorized", "code": 0}. Unknown
//     routes answer 404 {"message": "404: Not Found", "code": 0}, known
//     routes with another method 405. Every answer carries X-RateLimit-*
//     headers (Remaining never reaches 0, so discordgo never waits) and
//     Inject adds 429s (with retry_after and Retry-After) or other
//     statuses, which discordgo retries or returns.
//   - Gateway: HELLO with a configurable (huge by default) heartbeat
//     interval, heartbeat ACKs, IDENTIFY checks (token 4004, shard 4010,
//     unknown intents 4013, privileged intents not granted 4014, twice
//     4005, payloads before it 4003, unknown opcodes 4001, bad JSON 4002),
//     READY (session_id, resume_gateway_url, user, application, guilds
//     unavailable, shard), GUILD_CREATE per guild of the shard with
//     channels, active threads, roles and members, dispatches numbered per
//     session, RESUME replaying what the client missed then RESUMED, op 9
//     for unknown sessions, op 7 on request. A client closing with 1000 or
//     1001 ends its session, as on Discord.
//   - Intents: dispatches go only to sessions with the event's intent
//     (GUILDS, GUILD_MEMBERS, GUILD_MESSAGES or DIRECT_MESSAGES, the
//     reaction intents; INTERACTION_CREATE always) and to the shard of the
//     guild ((guild_id >> 22) % shards, DMs on shard 0). Without
//     MESSAGE_CONTENT, content, embeds, attachments and components are
//     empty except in DMs, in the bot's own messages and in messages that
//     mention the bot. If the intent is denied in the portal
//     (WithoutMessageContentIntent) REST reads are stripped the same way.
//     GUILD_CREATE lists every member only with GUILD_PRESENCES.
//   - Messages: create (JSON or multipart with payload_json and files[n]),
//     edit (content history kept), delete, get, list, reactions, typing;
//     the 2000-character limit and embed limits (400 code 50035 with
//     Discord's nested errors object), empty messages (50006), component
//     layout rules, allowed_mentions rules and their effect on mentions,
//     replies (type 19, referenced_message, replied user mentioned unless
//     replied_user is false), nonce with enforce_nonce (the first message
//     is returned again within NonceWindow), the 10 MiB upload limit.
//     Attachments are served at their cdn.discordapp.com URLs through
//     RewriteTransport.
//   - Threads: from a message (the thread id is the message id, type 11,
//     or 10 in an announcement channel; a second one is 400 code 160004)
//     and without one (in API v9 the type defaults to 12, private; v10
//     requires it); THREAD_CREATE and the starter message's MESSAGE_UPDATE
//     (HAS_THREAD flag and thread field).
//   - DMs (POST /users/@me/channels), users, guilds, members, channels.
//   - Application commands: bulk overwrite (ids stable per name and type,
//     version changes only when the definition does), create, get, delete,
//     global and per guild, with Discord's validation of names,
//     descriptions, options, choices and sub-commands.
//   - Interactions: SlashCommand, Autocomplete, ClickButton, ChooseSelect
//     and SubmitModal build the full INTERACTION_CREATE (typed options
//     checked against the registered definition, resolved users, members,
//     roles, channels and attachments, member permissions, app
//     permissions, locale, context). Callbacks 4 to 9 with the rules of
//     which type answers which interaction, ephemeral flag, a second
//     callback 400 code 40060, a callback more than 3 s after dispatch 404
//     code 10062; @original and follow-ups (GET, PATCH, DELETE, POST) until
//     15 min after dispatch, then 401 code 50027. A deferred response
//     creates a "thinking" message (flag LOADING); the first edit, or the
//     first follow-up, replaces it. Ephemeral messages never reach the
//     channel or the gateway.
//   - Every REST request is recorded with its headers, body and status;
//     IDENTIFY payloads and every gateway payload are recorded too.
//
// # Choices and simplifications
//
//   - Permissions are guild-wide (owner, ADMINISTRATOR, @everyone and
//     roles); channel overwrites are not applied and the bot may do
//     everything (e.g. delete other users' messages).
//   - The gateway never compresses (discordgo asks for payload compression
//     in IDENTIFY, which Discord may honour; transport compression
//     zlib-stream is refused with 4000). Heartbeats are answered but not
//     required: the fake never times a connection out.
//   - Request guild members (op 8), presence (op 3) and voice (op 4) are
//     recorded, not answered. TYPING_START and system messages (thread
//     created, etc.) are not dispatched.
//   - Rate limits are only what Inject adds; the headers are constant.
//   - Forum and media channels, polls, stickers, context-menu commands,
//     entitlements and the voice gateway are not simulated.
//   - Interaction follow-ups always answer with the message, whatever
//     ?wait says (as Discord does for interaction tokens).
package discordtest
