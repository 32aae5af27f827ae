package hordetest

// Wire structs of the responses, written from horde-api.md independently of
// package hordeapi, so that an encoding mistake in the client is caught here
// instead of being mirrored.

// errorBody is the Horde's error shape. rc is omitted for limiter 429s and
// generic 404/405/500 answers.
type errorBody struct {
	Message string `json:"message"`
	RC      string `json:"rc,omitempty"`
}

// validationBody is what Flask-RESTX answers for schema and reqparse errors.
type validationBody struct {
	Errors  map[string]string `json:"errors"`
	Message string            `json:"message"`
}

// asyncBody is the 202 answer of POST /v2/generate/text/async.
type asyncBody struct {
	ID      string  `json:"id"`
	Kudos   float64 `json:"kudos"`
	Message string  `json:"message,omitempty"`
}

// dryRunBody is the 200 answer of a dry_run submit.
type dryRunBody struct {
	Kudos float64 `json:"kudos"`
}

// Status is RequestStatusKobold, the body of GET and DELETE
// /v2/generate/text/status/{id}. Server.Status returns it for inspection.
type Status struct {
	Finished      int          `json:"finished"`
	Processing    int          `json:"processing"`
	Restarted     int          `json:"restarted"`
	Waiting       int          `json:"waiting"`
	Done          bool         `json:"done"`
	Faulted       bool         `json:"faulted"`
	WaitTime      int          `json:"wait_time"`
	QueuePosition int          `json:"queue_position"`
	Kudos         float64      `json:"kudos"`
	IsPossible    bool         `json:"is_possible"`
	Generations   []Generation `json:"generations"`
}

// Generation is one finished job in a Status.
type Generation struct {
	Text        string `json:"text"`
	Seed        int    `json:"seed"`
	WorkerID    string `json:"worker_id"`
	WorkerName  string `json:"worker_name"`
	Model       string `json:"model"`
	State       string `json:"state"`
	GenMetadata []any  `json:"gen_metadata"`
}

// webhookBody is POSTed to a request's webhook for each finished job (§1.5).
type webhookBody struct {
	Text        string  `json:"text"`
	Seed        int     `json:"seed"`
	WorkerID    string  `json:"worker_id"`
	WorkerName  string  `json:"worker_name"`
	Model       string  `json:"model"`
	ID          string  `json:"id"`
	GenMetadata []any   `json:"gen_metadata"`
	Request     string  `json:"request"`
	Kudos       float64 `json:"kudos"`
}

// workerBody is one entry of GET /v2/workers.
type workerBody struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"`
	Type              string            `json:"type"`
	Online            bool              `json:"online"`
	Trusted           bool              `json:"trusted"`
	Flagged           bool              `json:"flagged"`
	MaintenanceMode   bool              `json:"maintenance_mode"`
	NSFW              bool              `json:"nsfw"`
	BridgeAgent       string            `json:"bridge_agent"`
	Models            []string          `json:"models"`
	MaxLength         int               `json:"max_length"`
	MaxContextLength  int               `json:"max_context_length"`
	Threads           int               `json:"threads"`
	Performance       string            `json:"performance"`
	Uptime            int64             `json:"uptime"`
	RequestsFulfilled int               `json:"requests_fulfilled"`
	UncompletedJobs   int               `json:"uncompleted_jobs"`
	KudosRewards      float64           `json:"kudos_rewards"`
	KudosDetails      kudosGenUptime    `json:"kudos_details"`
	Info              string            `json:"info,omitempty"`
	Team              map[string]string `json:"team"`
}

type kudosGenUptime struct {
	Generated float64 `json:"generated"`
	Uptime    float64 `json:"uptime"`
}

// modelBody is one entry of GET /v2/status/models.
type modelBody struct {
	Name        string  `json:"name"`
	Count       int     `json:"count"`
	Performance float64 `json:"performance"`
	Queued      float64 `json:"queued"`
	Jobs        float64 `json:"jobs"`
	ETA         int     `json:"eta"`
	Type        string  `json:"type"`
}

// userBody is UserDetails at "self" privilege (GET /v2/find_user).
type userBody struct {
	Username          string              `json:"username"`
	ID                int                 `json:"id"`
	Kudos             float64             `json:"kudos"`
	KudosDetails      map[string]float64  `json:"kudos_details"`
	Records           userRecords         `json:"records"`
	Concurrency       int                 `json:"concurrency"`
	WorkerInvited     int                 `json:"worker_invited"`
	Moderator         bool                `json:"moderator"`
	Trusted           bool                `json:"trusted"`
	Flagged           bool                `json:"flagged"`
	Service           bool                `json:"service"`
	Education         bool                `json:"education"`
	Customizer        bool                `json:"customizer"`
	Deleted           bool                `json:"deleted"`
	VPN               bool                `json:"vpn"`
	Special           bool                `json:"special"`
	Pseudonymous      bool                `json:"pseudonymous"`
	AccountAge        int64               `json:"account_age"`
	WorkerCount       int                 `json:"worker_count"`
	WorkerIDs         []string            `json:"worker_ids"`
	SharedKeyIDs      []string            `json:"sharedkey_ids"`
	Styles            []any               `json:"styles"`
	ActiveGenerations map[string][]string `json:"active_generations"`
	Usage             map[string]any      `json:"usage"`
	Contributions     map[string]any      `json:"contributions"`
}

type userRecords struct {
	Usage        map[string]float64 `json:"usage"`
	Contribution map[string]float64 `json:"contribution"`
	Fulfillment  map[string]int     `json:"fulfillment"`
	Request      map[string]int     `json:"request"`
	Style        map[string]int     `json:"style"`
}

// heartbeatBody is GET /v2/status/heartbeat.
type heartbeatBody struct {
	Message      string `json:"message"`
	Version      string `json:"version"`
	Queue        int    `json:"queue"`
	Threads      int    `json:"threads"`
	ActiveCount  int    `json:"active_count"`
	DBConnection bool   `json:"db_connection"`
}

// performanceBody is GET /v2/status/performance.
type performanceBody struct {
	QueuedRequests          int     `json:"queued_requests"`
	QueuedTextRequests      int     `json:"queued_text_requests"`
	WorkerCount             int     `json:"worker_count"`
	TextWorkerCount         int     `json:"text_worker_count"`
	ThreadCount             int     `json:"thread_count"`
	TextThreadCount         int     `json:"text_thread_count"`
	QueuedMegapixelsteps    float64 `json:"queued_megapixelsteps"`
	PastMinuteMegapixelstep float64 `json:"past_minute_megapixelsteps"`
	QueuedForms             float64 `json:"queued_forms"`
	InterrogatorCount       int     `json:"interrogator_count"`
	InterrogatorThreadCount int     `json:"interrogator_thread_count"`
	QueuedTokens            float64 `json:"queued_tokens"`
	PastMinuteTokens        float64 `json:"past_minute_tokens"`
}

// modesBody is GET /v2/status/modes.
type modesBody struct {
	MaintenanceMode bool `json:"maintenance_mode"`
	InviteOnlyMode  bool `json:"invite_only_mode"`
}
