package hordetest

import (
	"fmt"
	"time"
)

// AnonymousKey is the API key of the shared anonymous account Anonymous#0.
// It always exists in the fake.
const AnonymousKey = "0000000000"

// TestAPIKey is the key of the registered user every fake starts with
// (tester#1, 1000 kudos). AddUser with the same key replaces it.
const TestAPIKey = "hordetest-0123456789abcdef"

// DefaultConcurrency is the Horde's default per-account concurrency.
const DefaultConcurrency = 30

// User is an account of the fake Horde, looked up by its API key.
type User struct {
	APIKey      string
	Username    string  // alias without the "#id" suffix
	ID          int     // 0 assigns the next free id (the anonymous user is 0)
	Kudos       float64 // the anonymous user's kudos are never tracked
	Concurrency int     // 0 means DefaultConcurrency
	Trusted     bool
	Service     bool // may send proxied_account
	Education   bool
	Moderator   bool
	Flagged     bool
	Deleted     bool // every submit gets 403 DeletedUser
	Patron      bool // may disable batching like a trusted user
	Contact     string
}

// Alias is "username#id", the Horde's unique alias.
func (u User) Alias() string { return fmt.Sprintf("%s#%d", u.Username, u.ID) }

type user struct {
	User
	created    time.Time
	usedTokens float64 // records.usage.tokens
	requests   int     // records.request.text
}

func (u *user) anonymous() bool { return u.APIKey == AnonymousKey }

func (u *user) concurrency() int {
	if u.Concurrency <= 0 {
		return DefaultConcurrency
	}
	return u.Concurrency
}

// AddUser adds an account, or replaces the one with the same API key, and
// returns it with its id and defaults filled in.
func (s *Server) AddUser(u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	return s.addUserLocked(u)
}

func (s *Server) addUserLocked(u User) User {
	if u.APIKey == "" {
		panic("hordetest: AddUser needs an APIKey")
	}
	old := s.users[u.APIKey]
	if u.APIKey == AnonymousKey {
		u.ID = 0
		if u.Username == "" {
			u.Username = "Anonymous"
		}
	} else if u.ID == 0 {
		if old != nil {
			u.ID = old.ID
		} else {
			s.nextUserID++
			u.ID = s.nextUserID
		}
	}
	if u.ID > s.nextUserID {
		s.nextUserID = u.ID
	}
	if u.Username == "" {
		u.Username = fmt.Sprintf("user%d", u.ID)
	}
	nu := &user{User: u, created: s.now}
	if old != nil {
		nu.created, nu.usedTokens, nu.requests = old.created, old.usedTokens, old.requests
		// Requests already queued keep pointing at the old record; move them.
		for _, r := range s.order {
			if r.user == old {
				r.user = nu
			}
		}
	}
	s.users[u.APIKey] = nu
	delete(s.userCache, u.APIKey)
	return u
}

// User returns the account with this API key, with its current kudos.
func (s *Server) User(apiKey string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[apiKey]
	if !ok {
		return User{}, false
	}
	return u.User, true
}

// SetKudos sets an account's kudos balance. It reports whether the key exists.
func (s *Server) SetKudos(apiKey string, kudos float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUpLocked(s.clock.Now())
	u, ok := s.users[apiKey]
	if ok {
		u.Kudos = kudos
	}
	return ok
}

// userDetailsLocked builds the find_user body of an account.
func (s *Server) userDetailsLocked(u *user) userBody {
	active := []string{}
	if !u.anonymous() {
		for _, r := range s.order {
			if r.user == u && !r.doneLocked() {
				active = append(active, r.id)
			}
		}
	}
	kudos := u.Kudos
	if u.anonymous() {
		kudos = 0
	}
	return userBody{
		Username:    u.Alias(),
		ID:          u.ID,
		Kudos:       kudos,
		Concurrency: u.concurrency(),
		Moderator:   u.Moderator,
		Trusted:     u.Trusted,
		Flagged:     u.Flagged,
		Service:     u.Service,
		Education:   u.Education,
		Deleted:     u.Deleted,
		AccountAge:  int64(s.now.Sub(u.created) / time.Second),
		KudosDetails: map[string]float64{
			"accumulated": 0, "gifted": 0, "donated": 0, "admin": 0,
			"received": 0, "recurring": 0, "awarded": 0, "styled": 0,
		},
		Records: userRecords{
			Usage:        map[string]float64{"megapixelsteps": 0, "tokens": u.usedTokens},
			Contribution: map[string]float64{"megapixelsteps": 0, "tokens": 0},
			Fulfillment:  map[string]int{"image": 0, "text": 0, "interrogation": 0},
			Request:      map[string]int{"image": 0, "text": u.requests, "interrogation": 0},
			Style:        map[string]int{"image": 0, "text": 0},
		},
		WorkerIDs:         []string{},
		SharedKeyIDs:      []string{},
		Styles:            []any{},
		ActiveGenerations: map[string][]string{"text": active, "image": {}, "alchemy": {}},
		Usage:             map[string]any{},
		Contributions:     map[string]any{},
	}
}
