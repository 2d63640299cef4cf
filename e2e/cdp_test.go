package e2e

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// A minimal Chrome DevTools Protocol client: it starts Debian's headless
// chromium, opens one page and drives it (navigate, evaluate JavaScript,
// take screenshots) over one WebSocket with flattened sessions. Every call
// is bounded by a timeout, and the browser is killed in the test's cleanup.

// cdpTimeout bounds one protocol call.
const cdpTimeout = 15 * time.Second

// viewport is the page size of every screenshot.
const viewportW, viewportH = 1280, 800

// chromiumPath finds the browser, or fails the test telling how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("e2e: chromium not found on PATH: run make setup (scripts/setup-chromium.sh installs Debian's chromium)")
	return ""
}

// Browser is one headless chromium with one page.
type Browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	ws      *websocket.Conn
	session string // the page's flattened session id

	mu      sync.Mutex
	nextID  int64
	waiting map[int64]chan cdpMessage
	closed  chan struct{}
	logs    []string // console messages and exceptions of the page
	// stderrDone is closed when chromium's stderr is drained.
	stderrDone chan struct{}
}

// cdpMessage is one protocol message: a response (ID set) or an event.
type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data,omitempty"`
	} `json:"error,omitempty"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startBrowser runs chromium headless and opens a blank 1280x800 page.
func startBrowser(t *testing.T) *Browser {
	t.Helper()
	bin := chromiumPath(t)
	profile := t.TempDir()
	cmd := exec.Command(bin,
		"--headless=new", "--no-sandbox", "--disable-gpu",
		"--remote-debugging-port=0", "--user-data-dir="+profile,
		"--remote-allow-origins=http://127.0.0.1",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
		"--disable-features=Translate,MediaRouter", "--hide-scrollbars", "--mute-audio",
		fmt.Sprintf("--window-size=%d,%d", viewportW, viewportH),
		"about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers die with it
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	b := &Browser{t: t, cmd: cmd, waiting: map[int64]chan cdpMessage{}, closed: make(chan struct{}), stderrDone: make(chan struct{})}
	t.Cleanup(b.close)

	// The DevTools URL is on stderr; keep draining stderr afterwards so
	// the browser never blocks on a full pipe.
	found := make(chan string, 1)
	var early strings.Builder
	go func() {
		defer close(b.stderrDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent {
				if m := devtoolsURL.FindStringSubmatch(line); m != nil {
					found <- m[1]
					sent = true
					continue
				}
				if early.Len() < 8<<10 {
					early.WriteString(line + "\n")
				}
			}
		}
		if !sent {
			close(found)
		}
	}()
	var wsURL string
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatalf("chromium exited without a DevTools URL; its output:\n%s", early.String())
		}
		wsURL = u
	case <-time.After(30 * time.Second):
		t.Fatalf("chromium printed no DevTools URL within 30s")
	}

	cfg, err := websocket.NewConfig(wsURL, "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer = nil
	ws, err := dialWithTimeout(cfg, 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to chromium's DevTools at %s: %v", wsURL, err)
	}
	ws.MaxPayloadBytes = 64 << 20 // full-page screenshots
	b.ws = ws
	go b.read()

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.mustCall("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.mustCall("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable"} {
		b.mustCall(b.session, m, nil, nil)
	}
	b.mustCall(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": viewportW, "height": viewportH, "deviceScaleFactor": 1, "mobile": false,
	}, nil)
	return b
}

// dialWithTimeout dials the DevTools WebSocket, bounded in time.
func dialWithTimeout(cfg *websocket.Config, d time.Duration) (*websocket.Conn, error) {
	type result struct {
		ws  *websocket.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ws, err := websocket.DialConfig(cfg)
		ch <- result{ws, err}
	}()
	select {
	case r := <-ch:
		return r.ws, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("no connection within %s", d)
	}
}

// read dispatches responses to their callers and keeps the page's console
// output, until the connection ends.
func (b *Browser) read() {
	defer close(b.closed)
	for {
		var m cdpMessage
		if err := websocket.JSON.Receive(b.ws, &m); err != nil {
			return
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.waiting[m.ID]
			delete(b.waiting, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		switch m.Method {
		case "Runtime.consoleAPICalled":
			var p struct {
				Type string `json:"type"`
				Args []struct {
					Value       any    `json:"value"`
					Description string `json:"description"`
				} `json:"args"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				var parts []string
				for _, a := range p.Args {
					if a.Value != nil {
						parts = append(parts, fmt.Sprint(a.Value))
					} else {
						parts = append(parts, a.Description)
					}
				}
				b.log("console." + p.Type + ": " + strings.Join(parts, " "))
			}
		case "Runtime.exceptionThrown":
			var p struct {
				Details struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				b.log("exception: " + p.Details.Text + " " + p.Details.Exception.Description)
			}
		}
	}
}

func (b *Browser) log(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.logs) < 200 {
		b.logs = append(b.logs, s)
	}
}

// Logs returns the page's console messages and uncaught exceptions so far.
func (b *Browser) Logs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.logs...)
}

// call sends one command (to the browser when session is "", else to the
// page) and decodes its result into out (when not nil), within cdpTimeout.
func (b *Browser) call(session, method string, params any, out any) error {
	if params == nil {
		params = struct{}{}
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
	}()
	msg := cdpMessage{ID: id, SessionID: session, Method: method, Params: raw}
	_ = b.ws.SetWriteDeadline(time.Now().Add(cdpTimeout))
	if err := websocket.JSON.Send(b.ws, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d) %s", method, m.Error.Message, m.Error.Code, m.Error.Data)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-b.closed:
		return fmt.Errorf("%s: the browser connection closed", method)
	case <-time.After(cdpTimeout):
		return fmt.Errorf("%s: no answer within %s", method, cdpTimeout)
	}
}

func (b *Browser) mustCall(session, method string, params any, out any) {
	b.t.Helper()
	if err := b.call(session, method, params, out); err != nil {
		b.t.Fatal(err)
	}
}

// Navigate loads url in the page and waits for its load to complete.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.mustCall(b.session, "Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigate to %s: %s", url, res.ErrorText)
	}
	b.WaitFor(10*time.Second, "page "+url+" loaded", `document.readyState === "complete" && location.href !== "about:blank"`)
}

// Eval evaluates a JavaScript expression in the page, awaiting a promise,
// and decodes its value (JSON) into out when out is not nil.
func (b *Browser) Eval(expr string, out any) error {
	var res struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := b.call(b.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
		"timeout": cdpTimeout.Milliseconds(),
	}, &res)
	if err != nil {
		return err
	}
	if e := res.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluating %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out != nil {
		if len(res.Result.Value) == 0 {
			return fmt.Errorf("evaluating %q: no value (type %s)", expr, res.Result.Type)
		}
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// MustEval is Eval failing the test on error.
func (b *Browser) MustEval(expr string, out any) {
	b.t.Helper()
	if err := b.Eval(expr, out); err != nil {
		b.t.Fatal(err)
	}
}

// WaitFor polls a JavaScript condition until it is true, failing the test
// after within; it returns how long it took.
func (b *Browser) WaitFor(within time.Duration, what, cond string) time.Duration {
	b.t.Helper()
	d, err := b.Poll(within, cond)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return d
}

// Poll polls a JavaScript condition every 25 ms until it is true or within
// passes.
func (b *Browser) Poll(within time.Duration, cond string) (time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < within {
		var ok bool
		if last = b.Eval("Boolean("+cond+")", &ok); last == nil && ok {
			return time.Since(start), nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	if last == nil {
		last = errors.New("condition still false: " + cond)
	}
	return 0, fmt.Errorf("not true within %s: %w", within, last)
}

// Screenshot saves the viewport (or, with full, the whole page) as a PNG
// and returns its path.
func (b *Browser) Screenshot(path string, full bool) string {
	b.t.Helper()
	params := map[string]any{"format": "png"}
	if full {
		params["captureBeyondViewport"] = true
		var size struct {
			W float64 `json:"w"`
			H float64 `json:"h"`
		}
		b.MustEval(`({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})`, &size)
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": size.W, "height": min(size.H, 4000), "scale": 1}
	}
	var res struct {
		Data string `json:"data"`
	}
	b.mustCall(b.session, "Page.captureScreenshot", params, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// close ends the connection and kills the browser and its helpers.
func (b *Browser) close() {
	if b.ws != nil {
		_ = b.ws.Close()
	}
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		select { // Wait closes the pipe: drain it first
		case <-b.stderrDone:
		case <-time.After(5 * time.Second):
		}
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	if b.t.Failed() {
		if logs := b.Logs(); len(logs) > 0 {
			b.t.Logf("browser console:\n%s", strings.Join(logs, "\n"))
		}
	}
}
