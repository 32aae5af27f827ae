package matrix_test

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// fakeKeys is the fake's end-to-end encryption part: device keys,
// one-time keys and to-device messages, for the bot and for test users
// (who call only these endpoints, with their own tokens).
type fakeKeys struct {
	users    map[string][2]string                  // token -> user, device
	devices  map[string]map[string]json.RawMessage // user -> device -> device_keys
	otks     map[string]map[string]json.RawMessage // user|device -> key id -> key
	fallback map[string]map[string]json.RawMessage // user|device -> key id -> key
	toDevice map[string][]map[string]any           // user|device -> pending events
	changed  map[string]bool                       // users whose devices changed since the bot's last sync
}

// keyRoutes adds the key endpoints; f.keys holds their state.
func (f *fakeHS) keyRoutes(mux *http.ServeMux) {
	f.keys = &fakeKeys{users: map[string][2]string{f.token: {f.botID, "BOTDEVICE"}},
		devices: map[string]map[string]json.RawMessage{}, otks: map[string]map[string]json.RawMessage{},
		fallback: map[string]map[string]json.RawMessage{}, toDevice: map[string][]map[string]any{}, changed: map[string]bool{}}
	mux.HandleFunc("POST /_matrix/client/v3/keys/upload", f.keyAuth(f.keysUpload))
	mux.HandleFunc("POST /_matrix/client/v3/keys/query", f.keyAuth(f.keysQuery))
	mux.HandleFunc("POST /_matrix/client/v3/keys/claim", f.keyAuth(f.keysClaim))
	mux.HandleFunc("PUT /_matrix/client/v3/sendToDevice/{type}/{txn}", f.keyAuth(f.sendToDevice))
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/m.room.encryption/", f.auth(f.encryptionState))
	mux.HandleFunc("GET /_matrix/client/v3/rooms/{room}/state/m.room.encryption", f.auth(f.encryptionState))
}

// addUser lets a test user call the key endpoints with token.
func (f *fakeHS) addUser(token, user, device string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys.users[token] = [2]string{user, device}
}

func (f *fakeHS) keyAuth(h func(w http.ResponseWriter, r *http.Request, user, device string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		u, ok := f.keys.users[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		f.mu.Unlock()
		if !ok {
			writeJSON(w, 401, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "Unknown access token"})
			return
		}
		h(w, r, u[0], u[1])
	}
}

func (f *fakeHS) keysUpload(w http.ResponseWriter, r *http.Request, user, device string) {
	var req struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]any{"errcode": "M_NOT_JSON", "error": err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := user + "|" + device
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		if f.keys.devices[user] == nil {
			f.keys.devices[user] = map[string]json.RawMessage{}
		}
		f.keys.devices[user][device] = req.DeviceKeys
		f.keys.changed[user] = true
	}
	if f.keys.otks[k] == nil {
		f.keys.otks[k] = map[string]json.RawMessage{}
	}
	for id, v := range req.OneTimeKeys {
		f.keys.otks[k][id] = v
	}
	if len(req.FallbackKeys) > 0 {
		f.keys.fallback[k] = req.FallbackKeys
	}
	writeJSON(w, 200, map[string]any{"one_time_key_counts": f.otkCounts(k)})
}

// otkCounts counts a device's one-time keys by algorithm; f.mu is held.
func (f *fakeHS) otkCounts(k string) map[string]int {
	counts := map[string]int{}
	for id := range f.keys.otks[k] {
		alg, _, _ := strings.Cut(id, ":")
		counts[alg]++
	}
	return counts
}

func (f *fakeHS) keysQuery(w http.ResponseWriter, r *http.Request, _, _ string) {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]json.RawMessage{}
	for user, devs := range req.DeviceKeys {
		out[user] = map[string]json.RawMessage{}
		for dev, keys := range f.keys.devices[user] {
			if len(devs) == 0 || contains(devs, dev) {
				out[user][dev] = keys
			}
		}
	}
	writeJSON(w, 200, map[string]any{"device_keys": out, "failures": map[string]any{}})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (f *fakeHS) keysClaim(w http.ResponseWriter, r *http.Request, _, _ string) {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[string]map[string]json.RawMessage{}
	for user, devs := range req.OneTimeKeys {
		out[user] = map[string]map[string]json.RawMessage{}
		for dev, alg := range devs {
			k := user + "|" + dev
			var ids []string
			for id := range f.keys.otks[k] {
				if strings.HasPrefix(id, alg+":") {
					ids = append(ids, id)
				}
			}
			sort.Strings(ids)
			if len(ids) > 0 {
				out[user][dev] = map[string]json.RawMessage{ids[0]: f.keys.otks[k][ids[0]]}
				delete(f.keys.otks[k], ids[0])
				continue
			}
			for id, v := range f.keys.fallback[k] {
				if strings.HasPrefix(id, alg+":") {
					out[user][dev] = map[string]json.RawMessage{id: v}
				}
			}
		}
	}
	writeJSON(w, 200, map[string]any{"one_time_keys": out, "failures": map[string]any{}})
}

func (f *fakeHS) sendToDevice(w http.ResponseWriter, r *http.Request, sender, _ string) {
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, 400, map[string]any{"errcode": "M_NOT_JSON", "error": err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for user, devs := range req.Messages {
		for dev, content := range devs {
			targets := []string{dev}
			if dev == "*" {
				targets = targets[:0]
				for d := range f.keys.devices[user] {
					targets = append(targets, d)
				}
			}
			for _, d := range targets {
				f.keys.toDevice[user+"|"+d] = append(f.keys.toDevice[user+"|"+d],
					map[string]any{"type": r.PathValue("type"), "sender": sender, "content": content})
			}
		}
	}
	f.notify()
	writeJSON(w, 200, map[string]any{})
}

// takeToDevice removes and returns the to-device events for a device;
// f.mu is held.
func (f *fakeHS) takeToDevice(user, device string) []map[string]any {
	k := user + "|" + device
	evts := f.keys.toDevice[k]
	delete(f.keys.toDevice, k)
	return evts
}

// encryptRoom marks room encrypted (an m.room.encryption state event).
func (f *fakeHS) encryptRoom(room string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sk := ""
	f.addEvent(&fakeEvent{Room: room, Sender: f.creators[room], Type: "m.room.encryption", StateKey: &sk,
		Content: map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}})
}

func (f *fakeHS) encryptionState(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.Room == r.PathValue("room") && e.Type == "m.room.encryption" {
			writeJSON(w, 200, e.Content)
			return
		}
	}
	writeJSON(w, 404, map[string]any{"errcode": "M_NOT_FOUND", "error": "Event not found."})
}

// syncKeys adds the bot device's to-device events, one-time key counts
// and device list changes to a /sync response; f.mu is held.
func (f *fakeHS) syncKeys(resp map[string]any) {
	evts := f.takeToDevice(f.botID, "BOTDEVICE")
	if evts == nil {
		evts = []map[string]any{}
	}
	resp["to_device"] = map[string]any{"events": evts}
	resp["device_one_time_keys_count"] = f.otkCounts(f.botID + "|BOTDEVICE")
	var changed []string
	for u := range f.keys.changed {
		if u != f.botID {
			changed = append(changed, u)
		}
	}
	clear(f.keys.changed)
	sort.Strings(changed)
	resp["device_lists"] = map[string]any{"changed": changed}
}

// pendingToBot reports whether the bot's device has to-device events
// waiting; f.mu is held.
func (f *fakeHS) pendingToBot() bool { return len(f.keys.toDevice[f.botID+"|BOTDEVICE"]) > 0 }

// post adds an event of any type from sender to room.
func (f *fakeHS) post(room, sender, typ string, content map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := &fakeEvent{Room: room, Sender: sender, Type: typ, Content: content}
	f.addEvent(e)
	return e.ID
}
