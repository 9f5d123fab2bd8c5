package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"bridge/bridge"
)

// authCacheTTL is how long a checked user and password are taken without
// paying bcrypt again: a page and its assets are one check, not three.
// Users change only at a restart, which empties the cache.
const authCacheTTL = 5 * time.Minute

// authCacheMax bounds the cache; past it, it starts again empty.
const authCacheMax = 1024

// maxBcrypt is how many bcrypt checks run at once: a flood of wrong
// passwords waits in line instead of taking every CPU from the webhooks.
const maxBcrypt = 2

// authenticator checks HTTP basic auth against bcrypt hashes.
type authenticator struct {
	users map[string][]byte // user → bcrypt hash
	dummy []byte            // checked for an unknown user, so it takes as long as a known one
	key   []byte            // keys the cache, so it holds no password
	now   func() time.Time
	sem   chan struct{}

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	user    string
	expires time.Time
}

func newAuthenticator(users map[string]bridge.Secret, key []byte, now func() time.Time) (*authenticator, error) {
	a := &authenticator{users: map[string][]byte{}, key: key, now: now, sem: make(chan struct{}, maxBcrypt), cache: map[[32]byte]cached{}}
	names := make([]string, 0, len(users))
	for name, hash := range users {
		if _, err := bcrypt.Cost([]byte(hash.Value())); err != nil {
			return nil, fmt.Errorf("console: user %q: not a bcrypt hash", name)
		}
		a.users[name] = []byte(hash.Value())
		names = append(names, name)
	}
	if len(names) > 0 {
		sort.Strings(names)
		cost, _ := bcrypt.Cost(a.users[names[0]])
		dummy, err := bcrypt.GenerateFromPassword([]byte("no such user"), cost)
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		a.dummy = dummy
	}
	return a, nil
}

// check returns the request's user, and whether it may go on: with no
// users configured, everyone may (as user "").
func (a *authenticator) check(r *http.Request) (string, bool) {
	if len(a.users) == 0 {
		return "", true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	mac := hmac.New(sha256.New, a.key)
	fmt.Fprintf(mac, "%d:%s:%s", len(user), user, pass)
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	now := a.now()
	a.mu.Lock()
	if c, hit := a.cache[k]; hit && now.Before(c.expires) {
		a.mu.Unlock()
		return c.user, true
	}
	a.mu.Unlock()

	hash, known := a.users[user]
	if !known {
		hash = a.dummy
	}
	if !a.acquire(r.Context()) {
		return "", false
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-a.sem
	if err != nil || !known {
		return "", false
	}
	a.mu.Lock()
	if len(a.cache) >= authCacheMax {
		for ck, c := range a.cache {
			if !now.Before(c.expires) {
				delete(a.cache, ck)
			}
		}
		if len(a.cache) >= authCacheMax {
			clear(a.cache)
		}
	}
	a.cache[k] = cached{user: user, expires: now.Add(authCacheTTL)}
	a.mu.Unlock()
	return user, true
}

func (a *authenticator) acquire(ctx context.Context) bool {
	select {
	case a.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// csrfKey makes and checks the token every form carries: an HMAC of the
// user under a key this process drew at start. A page of another site can
// neither read it (the same-origin policy) nor guess it.
type csrfKey struct{ key []byte }

func (k *csrfKey) token(user string) string {
	mac := hmac.New(sha256.New, k.key)
	fmt.Fprintf(mac, "csrf:%s", user)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (k *csrfKey) valid(user, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(k.token(user)))
}
