package bot

// OnSubmittedForTest makes the engine report each job id once the Horde
// accepted it, with the asker as "platform:user". Set it before any chat.
func (e *Engine) OnSubmittedForTest(f func(userKey, jobID string)) { e.submitted = f }
