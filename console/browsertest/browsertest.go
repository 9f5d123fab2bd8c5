// Package browsertest drives Debian's chromium from Go tests (through
// chromedp) to use the console as a person does: it answers the basic-auth
// challenge like a person typing into the dialog, clicks, fills forms,
// takes screenshots, and records every console error, uncaught exception,
// failed load and JavaScript dialog, which a test then requires to be none.
//
// Nothing is downloaded: the browser is the system's chromium. Without it
// a test is skipped with a message, unless CI is set, where it fails.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the path of the system's chromium. When there is none it
// skips t, or fails it when the environment variable CI is set, so that CI
// never passes without running the browser tests.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "chromium is not installed (apt-get install -y chromium): the browser tests need it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg + "; skipping")
	return ""
}

// Browser is one headless chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context
	dir string // where screenshots go

	mu       sync.Mutex
	user     string
	password string
	problems []string // console errors, exceptions, failed loads, dialogs
}

// New starts chromium for t; it stops when t ends. Screenshots go to
// t's temporary directory, or to $BRIDGE_SCREENSHOTS when set.
func New(t testing.TB) *Browser {
	t.Helper()
	exe := Chromium(t)
	b := &Browser{t: t, dir: os.Getenv("BRIDGE_SCREENSHOTS")}
	if b.dir == "" {
		b.dir = t.TempDir()
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b.ctx = ctx
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("browsertest: start chromium: %v", err)
	}
	b.watch()
	return b
}

// Login sets the user and password the browser answers a basic-auth
// challenge with, as a person would type them into the browser's dialog.
func (b *Browser) Login(user, password string) {
	b.mu.Lock()
	b.user, b.password = user, password
	b.mu.Unlock()
}

// watch answers every auth challenge, lets every request through, and
// records what a person would see as a broken page.
func (b *Browser) watch() {
	ctx := b.ctx
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	consoleCalls := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	logs := chromedp.Events(ctx, cdplog.EntryAdded)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	failed := chromedp.Events(ctx, network.LoadingFailed)

	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			b.mu.Lock()
			user, pw := b.user, b.password
			b.mu.Unlock()
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			if user != "" {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: user, Password: pw}
				// A wrong password is tried once, as a person gives up
				// after the dialog comes back.
				b.mu.Lock()
				b.user, b.password = "", ""
				b.mu.Unlock()
			}
			chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
		}
	}()
	go func() {
		for ev, err := range consoleCalls {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber, msg)
		}
	}()
	go func() {
		for ev, err := range logs {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.problem("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.problem("a JavaScript %s dialog opened: %q", ev.Type, ev.Message)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		for ev, err := range failed {
			if err != nil {
				return
			}
			if !ev.Canceled {
				b.problem("load failed: %s (%s)", ev.ErrorText, ev.BlockedReason)
			}
		}
	}()
	yes := true
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		b.t.Fatalf("browsertest: enable the log: %v", err)
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: &yes}); err != nil {
		b.t.Fatalf("browsertest: enable fetch: %v", err)
	}
}

func (b *Browser) problem(format string, args ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

// Problems returns and forgets what went wrong in the pages so far.
func (b *Browser) Problems() []string {
	// The events arrive on other goroutines; let those of the last page in.
	time.Sleep(150 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// NoProblems fails the test with every console error, exception, failed
// load or dialog seen since the last check, naming what was being done.
func (b *Browser) NoProblems(what string) {
	b.t.Helper()
	for _, p := range b.Problems() {
		b.t.Errorf("%s: %s", what, p)
	}
}

// Open navigates to url and returns the HTTP status of the page.
func (b *Browser) Open(url string) int {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("browsertest: open %s: %v", url, err)
	}
	return int(resp.Status)
}

// Click clicks the first element css matches and waits for the page it
// leads to; it returns that page's HTTP status.
func (b *Browser) Click(css string) int {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browsertest: click %s: %v", css, err)
	}
	return int(resp.Status)
}

// SetValue sets the value of a form field.
func (b *Browser) SetValue(css, value string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(css), value)); err != nil {
		b.t.Fatalf("browsertest: set %s: %v", css, err)
	}
}

// Text returns the visible text of the first element css matches.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css), chromedp.NodeReady))
	if err != nil {
		b.t.Fatalf("browsertest: text of %s: %v", css, err)
	}
	return s
}

// Eval runs a JavaScript expression in the page and returns its result.
func Eval[T any](b *Browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("browsertest: eval %s: %v", js, err)
	}
	return v
}

// Location returns the page's URL.
func (b *Browser) Location() string {
	b.t.Helper()
	u, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatalf("browsertest: location: %v", err)
	}
	return u
}

// Screenshot saves the whole page as name.png and returns the file's path.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browsertest: screenshot: %v", err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}
