package bridgetest

import "github.com/hordechat/hordechat/bridge"

// JobState reports whether the journal has job id and, if it finished, how
// ("" while unfinished): what storage tells the chat engine at start-up.
func (m *MemStore) JobState(id string) (state bridge.JobState, known bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return "", false
	}
	return j.state, true
}
