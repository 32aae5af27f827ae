package matrixtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// keyState is end-to-end encryption: device keys, one-time keys and
// to-device messages, for the bot and for test users' devices (which
// call only these endpoints, with their own tokens; see AddDevice).
type keyState struct {
	users    map[string][2]string                  // token -> user, device
	devices  map[string]map[string]json.RawMessage // user -> device -> device_keys
	otks     map[string]map[string]json.RawMessage // user|device -> key id -> key
	fallback map[string]map[string]json.RawMessage // user|device -> key id -> key
	toDevice map[string][]ToDevice                 // user|device -> pending events
	changed  map[string]bool                       // users whose devices changed since the bot's last sync
}

// ToDevice is a to-device event waiting for a device.
type ToDevice struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content json.RawMessage `json:"content"`
}

func newKeyState(token, bot, device string) *keyState {
	return &keyState{users: map[string][2]string{token: {bot, device}},
		devices: map[string]map[string]json.RawMessage{}, otks: map[string]map[string]json.RawMessage{},
		fallback: map[string]map[string]json.RawMessage{}, toDevice: map[string][]ToDevice{}, changed: map[string]bool{}}
}

func (s *Server) keyRoutes(mux *http.ServeMux) {
	const c = "/_matrix/client/v3"
	mux.HandleFunc("POST "+c+"/keys/upload", s.keyAuth(s.keysUpload))
	mux.HandleFunc("POST "+c+"/keys/query", s.keyAuth(s.keysQuery))
	mux.HandleFunc("POST "+c+"/keys/claim", s.keyAuth(s.keysClaim))
	mux.HandleFunc("PUT "+c+"/sendToDevice/{type}/{txn}", s.keyAuth(s.sendToDevice))
}

// AddDevice lets user's device call the key endpoints (keys/upload,
// query, claim, sendToDevice) with token, e.g. a mautrix OlmMachine of a
// test user.
func (s *Server) AddDevice(token, user, device string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.users[token] = [2]string{user, device}
}

// TakeToDevice removes and returns the to-device events waiting for
// user's device.
func (s *Server) TakeToDevice(user, device string) []ToDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys.take(user, device)
}

func (k *keyState) take(user, device string) []ToDevice {
	key := user + "|" + device
	evts := k.toDevice[key]
	delete(k.toDevice, key)
	return evts
}

// pendingFor reports whether a device has to-device events waiting.
func (k *keyState) pendingFor(user, device string) bool { return len(k.toDevice[user+"|"+device]) > 0 }

func (s *Server) keyAuth(h func(w http.ResponseWriter, r *http.Request, user, device string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		u, ok := s.keys.users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		s.mu.Unlock()
		if !ok {
			writeJSON(w, 401, merr("M_UNKNOWN_TOKEN", "Unknown access token"))
			return
		}
		h(w, r, u[0], u[1])
	}
}

func (s *Server) keysUpload(w http.ResponseWriter, r *http.Request, user, device string) {
	var req struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := user + "|" + device
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		if s.keys.devices[user] == nil {
			s.keys.devices[user] = map[string]json.RawMessage{}
		}
		s.keys.devices[user][device] = req.DeviceKeys
		s.keys.changed[user] = true
	}
	if s.keys.otks[k] == nil {
		s.keys.otks[k] = map[string]json.RawMessage{}
	}
	for id, v := range req.OneTimeKeys {
		s.keys.otks[k][id] = v
	}
	if len(req.FallbackKeys) > 0 {
		s.keys.fallback[k] = req.FallbackKeys
	}
	s.notifyLocked("")
	writeJSON(w, 200, map[string]any{"one_time_key_counts": s.keys.otkCounts(k)})
}

// otkCounts counts a device's one-time keys by algorithm.
func (k *keyState) otkCounts(key string) map[string]int {
	counts := map[string]int{}
	for id := range k.otks[key] {
		alg, _, _ := strings.Cut(id, ":")
		counts[alg]++
	}
	return counts
}

func (s *Server) keysQuery(w http.ResponseWriter, r *http.Request, _, _ string) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]json.RawMessage{}
	for user, devs := range req.DeviceKeys {
		out[user] = map[string]json.RawMessage{}
		for dev, keys := range s.keys.devices[user] {
			if len(devs) == 0 || slices.Contains(devs, dev) {
				out[user][dev] = keys
			}
		}
	}
	writeJSON(w, 200, map[string]any{"device_keys": out, "failures": map[string]any{}})
}

func (s *Server) keysClaim(w http.ResponseWriter, r *http.Request, _, _ string) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[string]map[string]json.RawMessage{}
	for user, devs := range req.OneTimeKeys {
		out[user] = map[string]map[string]json.RawMessage{}
		for dev, alg := range devs {
			k := user + "|" + dev
			var ids []string
			for id := range s.keys.otks[k] {
				if strings.HasPrefix(id, alg+":") {
					ids = append(ids, id)
				}
			}
			sort.Strings(ids)
			if len(ids) > 0 {
				out[user][dev] = map[string]json.RawMessage{ids[0]: s.keys.otks[k][ids[0]]}
				delete(s.keys.otks[k], ids[0])
				continue
			}
			for id, v := range s.keys.fallback[k] {
				if strings.HasPrefix(id, alg+":") {
					out[user][dev] = map[string]json.RawMessage{id: v}
				}
			}
		}
	}
	writeJSON(w, 200, map[string]any{"one_time_keys": out, "failures": map[string]any{}})
}

func (s *Server) sendToDevice(w http.ResponseWriter, r *http.Request, sender, _ string) {
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, merr("M_NOT_JSON", err.Error()))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for user, devs := range req.Messages {
		for dev, content := range devs {
			targets := []string{dev}
			if dev == "*" {
				targets = targets[:0]
				for d := range s.keys.devices[user] {
					targets = append(targets, d)
				}
			}
			for _, d := range targets {
				k := user + "|" + d
				s.keys.toDevice[k] = append(s.keys.toDevice[k], ToDevice{Type: r.PathValue("type"), Sender: sender, Content: content})
			}
		}
	}
	s.notifyLocked("")
	writeJSON(w, 200, map[string]any{})
}

// syncInto adds the device's to-device events, one-time key counts and
// device list changes to a /sync response, taking the events.
func (k *keyState) syncInto(resp map[string]any, user, device string) {
	evts := k.take(user, device)
	if evts == nil {
		evts = []ToDevice{}
	}
	resp["to_device"] = map[string]any{"events": evts}
	resp["device_one_time_keys_count"] = k.otkCounts(user + "|" + device)
	changed := []string{}
	for u := range k.changed {
		if u != user {
			changed = append(changed, u)
		}
	}
	clear(k.changed)
	sort.Strings(changed)
	resp["device_lists"] = map[string]any{"changed": changed}
}
