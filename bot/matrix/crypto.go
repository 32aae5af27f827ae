//go:build goolm

package matrix

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	_ "modernc.org/sqlite" // the crypto store's driver, "sqlite"
)

// olm is e2ee on mautrix's OlmMachine (pure Go goolm), with its store in
// a SQLite file of its own.
type olm struct {
	a     *Adapter
	db    *sql.DB
	mach  *crypto.OlmMachine
	state *mautrix.MemoryStateStore

	// mu serializes encryption: sharing a group session and encrypting
	// with it must not interleave.
	mu sync.Mutex
	// known: rooms whose encryption state was looked up (or seen in sync).
	known sync.Map
	// fresh: rooms the bot encrypted to this run. The first message of a
	// run starts a new group session, shared with the members and devices
	// of now (they may have changed while the bot was away).
	fresh sync.Map
}

// roomState is the machine's state store: mautrix's in-memory one for
// the rooms' encryption, with shared rooms found from the adapter's
// member lists (the bot does not track all membership in sync).
type roomState struct {
	*mautrix.MemoryStateStore
	o *olm
}

// FindSharedRooms returns the encrypted rooms (known this run) user is in:
// a device change of theirs rotates the group sessions there.
func (s roomState) FindSharedRooms(ctx context.Context, user id.UserID) ([]id.RoomID, error) {
	var rooms []id.RoomID
	s.o.known.Range(func(k, _ any) bool {
		room := k.(id.RoomID)
		if enc, _ := s.IsEncrypted(ctx, room); !enc {
			return true
		}
		members, err := s.o.a.roomMembers(ctx, room)
		if err != nil {
			// Unknown members: rotate to be safe.
			rooms = append(rooms, room)
			return true
		}
		if _, ok := members[user]; ok {
			rooms = append(rooms, room)
		}
		return true
	})
	return rooms, nil
}

// cryptoPaths returns the crypto database and the pickle key file.
func (a *Adapter) cryptoPaths() (dbPath, keyPath string) {
	dbPath = a.cfg.CryptoDatabase
	dir := ""
	if a.cfg.SessionFile != "" {
		dir = filepath.Dir(a.cfg.SessionFile)
	} else if dbPath != "" {
		dir = filepath.Dir(dbPath)
	}
	if dbPath == "" && dir != "" {
		dbPath = filepath.Join(dir, "matrix-crypto.db")
	}
	if dir != "" {
		keyPath = filepath.Join(dir, "matrix-pickle.key")
	}
	return dbPath, keyPath
}

// pickleKey is matrix.pickle_key, or a random key made once and kept in
// a 0600 file beside the session file.
func (a *Adapter) pickleKey(keyPath string) ([]byte, error) {
	if a.cfg.PickleKey != "" {
		return []byte(a.cfg.PickleKey), nil
	}
	if keyPath == "" {
		return nil, errors.New("matrix.encryption: set matrix.pickle_key or matrix.session_file (the pickle key is kept beside it)")
	}
	if raw, err := os.ReadFile(keyPath); err == nil {
		k := strings.TrimSpace(string(raw))
		if k == "" {
			return nil, fmt.Errorf("matrix pickle key %s is empty; restore it or delete it together with the crypto database", keyPath)
		}
		return []byte(k), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("matrix pickle key: %w", err)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	k := base64.RawStdEncoding.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return nil, fmt.Errorf("matrix pickle key: %w", err)
	}
	f, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("matrix pickle key: %w", err)
	}
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("matrix pickle key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("matrix pickle key: %w", err)
	}
	return []byte(k), nil
}

// newE2EE opens the crypto store, loads (or creates) the device's olm
// account and makes sure its keys are on the homeserver.
func (a *Adapter) newE2EE(ctx context.Context) (e2ee, error) {
	if a.cli.DeviceID == "" {
		return nil, errors.New("matrix.encryption: the session has no device id")
	}
	dbPath, keyPath := a.cryptoPaths()
	if dbPath == "" {
		return nil, errors.New("matrix.encryption: set matrix.crypto_database or matrix.session_file (the crypto database is kept beside it)")
	}
	pk, err := a.pickleKey(keyPath)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return nil, fmt.Errorf("matrix crypto database: %w", err)
	}
	raw, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("matrix crypto database: %w", err)
	}
	raw.SetMaxOpenConns(1)
	o := &olm{a: a, db: raw, state: mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()
	db, err := dbutil.NewWithDB(raw, "sqlite")
	if err != nil {
		return nil, fmt.Errorf("matrix crypto database: %w", err)
	}
	zl := a.cli.Log.With().Str("component", "crypto").Logger()
	store := crypto.NewSQLCryptoStore(db, dbutil.ZeroLogger(zl), a.cfg.UserID, a.cli.DeviceID, pk)
	if err := store.DB.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("matrix crypto database %s: %w", dbPath, err)
	}
	stored, err := store.FindDeviceID(ctx)
	if err != nil {
		return nil, fmt.Errorf("matrix crypto database %s: %w", dbPath, err)
	}
	if stored != "" && stored != a.cli.DeviceID {
		return nil, fmt.Errorf("matrix crypto database %s belongs to device %s, but the session is device %s; delete it (and %s) to start the new device fresh",
			dbPath, stored, a.cli.DeviceID, keyPath)
	}
	o.mach = crypto.NewOlmMachine(a.cli, &zl, store, roomState{o.state, o})
	o.mach.SetBackgroundCtx(context.WithoutCancel(ctx))
	if err := o.mach.Load(ctx); err != nil {
		return nil, fmt.Errorf("matrix crypto: load olm account: %w", err)
	}
	if err := o.checkServerKeys(ctx); err != nil {
		return nil, err
	}
	ok = true
	a.log.Info("matrix end-to-end encryption on", "device_id", a.cli.DeviceID, "fingerprint", o.mach.Fingerprint())
	return o, nil
}

// checkServerKeys uploads the device keys unless the homeserver has them
// already (and then checks they are this account's).
func (o *olm) checkServerKeys(ctx context.Context) error {
	cli := o.a.cli
	resp, err := cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: map[id.UserID]mautrix.DeviceIDList{cli.UserID: {cli.DeviceID}}})
	if err != nil {
		return fmt.Errorf("matrix crypto: query own keys: %w", err)
	}
	dev, found := resp.DeviceKeys[cli.UserID][cli.DeviceID]
	shared := o.mach.GetAccount().Shared
	switch {
	case !found || len(dev.Keys) == 0:
		if err := o.mach.ShareKeys(ctx, -1); err != nil {
			return fmt.Errorf("matrix crypto: upload device keys: %w", err)
		}
	case !shared:
		return fmt.Errorf("matrix crypto: device %s already has keys on the homeserver that this crypto database did not make; log in as a new device (delete matrix.session_file) or restore the crypto database", cli.DeviceID)
	case dev.Keys.GetEd25519(cli.DeviceID) != o.mach.OwnIdentity().SigningKey:
		return fmt.Errorf("matrix crypto: the homeserver has other keys for device %s than this crypto database", cli.DeviceID)
	}
	return nil
}

func (o *olm) close() error { return o.db.Close() }

func (o *olm) processSync(ctx context.Context, resp *mautrix.RespSync, since string) {
	o.mach.ProcessSyncResponse(ctx, resp, since)
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			if evt.Type != event.StateEncryption && evt.Type != event.StateMember {
				continue
			}
			if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
				continue
			}
			if evt.Type == event.StateMember {
				// A member came or went: the next message goes out in a
				// new group session, shared with the members of then.
				o.a.forgetMembers(roomID)
				evt.RoomID = roomID
				o.mach.HandleMemberEvent(ctx, evt)
				continue
			}
			if c := evt.Content.AsEncryption(); c.Algorithm != "" {
				_ = o.state.SetEncryptionEvent(ctx, roomID, c)
				o.known.Store(roomID, true)
			}
		}
	}
}

// encrypted reports whether room is encrypted, asking the homeserver once.
func (o *olm) encrypted(ctx context.Context, room id.RoomID) (bool, error) {
	if _, ok := o.known.Load(room); !ok {
		var c event.EncryptionEventContent
		err := o.a.cli.StateEvent(ctx, room, event.StateEncryption, "", &c)
		switch {
		case err == nil && c.Algorithm != "":
			_ = o.state.SetEncryptionEvent(ctx, room, &c)
		case err == nil || errors.Is(err, mautrix.MNotFound):
		default:
			return false, fmt.Errorf("matrix: is room %s encrypted: %w", room, err)
		}
		o.known.Store(room, true)
	}
	return o.state.IsEncrypted(ctx, room)
}

func (o *olm) encrypt(ctx context.Context, room id.RoomID, c *event.MessageEventContent) (event.Type, any, error) {
	enc, err := o.encrypted(ctx, room)
	if err != nil || !enc {
		return event.EventMessage, c, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, started := o.fresh.LoadOrStore(room, true); !started {
		if err := o.mach.CryptoStore.RemoveOutboundGroupSession(ctx, room); err != nil {
			return event.Type{}, nil, fmt.Errorf("matrix: rotate room key: %w", err)
		}
	}
	out, err := o.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, c)
	if errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionNotShared) {
		var members map[id.UserID]string
		if members, err = o.a.roomMembers(ctx, room); err != nil {
			return event.Type{}, nil, fmt.Errorf("matrix: members of %s: %w", room, err)
		}
		users := make([]id.UserID, 0, len(members))
		for u := range members {
			users = append(users, u)
		}
		if err = o.mach.ShareGroupSession(ctx, room, users); err != nil {
			return event.Type{}, nil, fmt.Errorf("matrix: share room key: %w", err)
		}
		out, err = o.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, c)
	}
	if err != nil {
		return event.Type{}, nil, fmt.Errorf("matrix: encrypt: %w", err)
	}
	if raw, _ := json.Marshal(out); len(raw) > 65000 && c.FormattedBody != "" {
		// Encryption makes the event about 4/3 as large: send plain text.
		c.Format, c.FormattedBody = "", ""
		if c.NewContent != nil {
			c.NewContent.Format, c.NewContent.FormattedBody = "", ""
		}
		if out, err = o.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, c); err != nil {
			return event.Type{}, nil, fmt.Errorf("matrix: encrypt: %w", err)
		}
	}
	return event.EventEncrypted, out, nil
}

func (o *olm) decrypt(ctx context.Context, evt *event.Event, wait time.Duration) (*event.Event, error) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return nil, err
	}
	_ = o.state.SetEncryptionEvent(ctx, evt.RoomID, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1})
	o.known.Store(evt.RoomID, true)
	dec, err := o.mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) && wait > 0 {
		c := evt.Content.AsEncrypted()
		if o.mach.WaitForSession(ctx, evt.RoomID, c.SenderKey, c.SessionID, wait) {
			dec, err = o.mach.DecryptMegolmEvent(ctx, evt)
		}
	}
	return dec, err
}
