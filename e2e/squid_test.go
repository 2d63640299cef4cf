package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/egressd/egressd/internal/testkit"
)

// squidPeer is Debian's squid, the forward-proxy peer of the overhead
// benchmark: an HTTP forward proxy on loopback that allows one host (a
// dstdomain ACL) and refuses the rest, caches nothing and logs nothing,
// its name resolved from a hosts file of its own.
type squidPeer struct {
	addr string // the proxy's address
	pid  int
}

// startSquid runs squid for webHost (at 127.0.0.1) until the benchmark
// ends, ready once target (an absolute URL of that host) answers 200
// through it; it skips the benchmark when squid is not installed
// (scripts/setup-loadtools.sh installs it).
func startSquid(b *testing.B, webHost, target string) *squidPeer {
	b.Helper()
	bin, err := exec.LookPath("squid")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/squid"); statErr != nil {
			b.Skip("squid is not installed: run scripts/setup-loadtools.sh")
		}
		bin = "/usr/sbin/squid"
	}
	// Squid started as root serves as its own user (proxy): its folder
	// must be readable by it, which a test's temporary folder is not.
	dir, err := os.MkdirTemp("", "egressd-squid-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	port := testkit.FreePort(b)
	hosts := filepath.Join(dir, "hosts")
	writeFile(b, dir, "hosts", "127.0.0.1 "+webHost+"\n")
	conf := fmt.Sprintf(`http_port 127.0.0.1:%d
pid_filename none
cache deny all
pinger_enable off
access_log none
cache_store_log none
cache_log /dev/null
logfile_rotate 0
hosts_file %s
dns_nameservers 127.0.0.1
acl listed dstdomain %s
http_access allow listed
http_access deny all
via off
forwarded_for delete
shutdown_lifetime 0 seconds
workers 1
coredump_dir %s
`, port, hosts, webHost, dir)
	writeFile(b, dir, "squid.conf", conf)
	ctx, cancel := context.WithCancel(context.Background())
	// -N: no daemon, the process is the one that serves; -d 0: quiet.
	cmd := exec.CommandContext(ctx, bin, "-N", "-d", "0", "-f", filepath.Join(dir, "squid.conf"))
	logFile, err := os.Create(filepath.Join(dir, "squid.out"))
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatalf("start squid: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logFile.Close()
		if b.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "squid.out"))
			b.Logf("squid output:\n%s", out)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	proxy := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}}
	eventually(b, 30*time.Second, "squid serving", func() error {
		resp, err := proxy.Get(target)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return &squidPeer{addr: addr, pid: cmd.Process.Pid}
}

// runWrkProxy loads url (absolute, "http://host:port/") through the
// forward proxy at addr with wrk: a small Lua script makes every request
// line carry the absolute URI, as a client configured with HTTP_PROXY does.
func runWrkProxy(b *testing.B, target, addr string, pid int) loadResult {
	b.Helper()
	script := filepath.Join(b.TempDir(), "proxy.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("wrk.path = %q\n", target)), 0o644); err != nil {
		b.Fatal(err)
	}
	return runWrkArgs(b, "http://"+addr+"/", gatewayPIDs{envoy: pid}, "-s", script)
}
