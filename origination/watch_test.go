package origination

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// rotationDeadline is how soon a rotation must be served.
const rotationDeadline = 2 * time.Second

func TestRunRotationByRename(t *testing.T) {
	e := newEnv(t, time.Hour) // no resync: only the watcher can see the change
	a, b := mint(t, spec{cn: "a"}), mint(t, spec{cn: "b"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	if errs := e.s.Want([]Source{src}, nil); errs != nil {
		t.Fatal(errs)
	}
	e.run(t)
	v := e.s.Version()

	replaceFile(t, src.CertFile, b.certPEM())
	replaceFile(t, src.KeyFile, b.keyPEM(t))
	e.waitChange(t, rotationDeadline)
	eventually(t, rotationDeadline, "new certificate served", func() bool {
		return bytes.Equal(chainOf(e.s.Secrets()[0]), b.certPEM())
	})
	if e.s.Version() == v {
		t.Errorf("Version unchanged after rotation")
	}
}

func TestRunRotationByDataSymlinkSwap(t *testing.T) {
	e := newEnv(t, time.Hour)
	first, second := newChain(t, "first"), newChain(t, "second")
	vol := newK8sVolume(t, filepath.Join(e.dir, "partner"), k8sFiles(t, first))
	src := Source{CredentialName: "partner"}
	if errs := e.s.Want([]Source{src}, []Source{src}); errs != nil {
		t.Fatal(errs)
	}
	e.run(t)

	vol.swap(t, k8sFiles(t, second))
	e.waitChange(t, rotationDeadline)
	eventually(t, rotationDeadline, "new client certificate and CA served", func() bool {
		s := e.s.Secrets()
		return len(s) == 2 &&
			bytes.Equal(s[0].GetValidationContext().GetTrustedCa().GetInlineBytes(), second.root.certPEM()) &&
			bytes.Equal(chainOf(s[1]), pemOf(second.leaf.certPEM(), second.inter.certPEM()))
	})

	// A broken replacement keeps the last good material.
	e.drainChanges()
	errs := e.reloadErrors(t)
	broken := k8sFiles(t, second)
	broken["tls.key"] = first.leaf.keyPEM(t)
	vol.swap(t, broken)
	eventually(t, rotationDeadline, "failed reload counted", func() bool { return e.reloadErrors(t) > errs })
	if s := e.s.Secrets(); len(s) != 2 || !bytes.Equal(chainOf(s[1]), pemOf(second.leaf.certPEM(), second.inter.certPEM())) {
		t.Errorf("the last good certificate is no longer served")
	}
	select {
	case <-e.changes:
		t.Errorf("OnChange called for a broken replacement")
	default:
	}
	// The counter moves before the line is written: wait for the line.
	eventually(t, rotationDeadline, "broken replacement logged", func() bool {
		return len(e.messages("tls secret reload failed; serving the last good material")) > 0
	})

	// A third swap with good files is served again.
	third := newChain(t, "third")
	vol.swap(t, k8sFiles(t, third))
	e.waitChange(t, rotationDeadline)
	eventually(t, rotationDeadline, "third certificate served", func() bool {
		return bytes.Equal(chainOf(e.s.Secrets()[1]), pemOf(third.leaf.certPEM(), third.inter.certPEM()))
	})
}

// TestRunCredentialAppears checks that a credential folder created after
// Want is picked up: the gateway fails closed, then recovers by itself.
func TestRunCredentialAppears(t *testing.T) {
	e := newEnv(t, time.Hour)
	src := Source{CredentialName: "late"}
	if errs := e.s.Want([]Source{src}, nil); errs == nil {
		t.Fatal("Want of a missing credential succeeded")
	}
	e.run(t)
	if len(e.s.Secrets()) != 0 {
		t.Fatal("a missing credential is served")
	}

	// Write the folder elsewhere, then rename it in, as a provisioner would.
	staging := filepath.Join(t.TempDir(), "late")
	for name, b := range k8sFiles(t, newChain(t, "late")) {
		writeFile(t, filepath.Join(staging, name), b)
	}
	if err := os.Rename(staging, filepath.Join(e.dir, "late")); err != nil {
		t.Skipf("cannot rename across folders here: %v", err)
	}
	e.waitChange(t, rotationDeadline)
	if got := secretNames(e.s.Secrets()); len(got) != 1 || got[0] != "egressd-client/late" {
		t.Errorf("Secrets() = %q", got)
	}
}

// TestRunResync checks the periodic re-check: quiet when nothing changed,
// loud about an expired certificate at every pass.
func TestRunResync(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond)
	a := mint(t, spec{cn: "ages"})
	src := filePair(t, e.dir, a.certPEM(), a.keyPEM(t))
	e.s.Want([]Source{src}, nil)
	e.run(t)

	time.Sleep(200 * time.Millisecond)
	select {
	case <-e.changes:
		t.Errorf("OnChange called though nothing changed")
	default:
	}

	e.setNow(a.cert.NotAfter.Add(time.Minute))
	eventually(t, 2*time.Second, "expired certificate logged at several resyncs", func() bool {
		return len(e.messages("client certificate has expired")) >= 3
	})
	if len(e.s.Secrets()) != 1 {
		t.Errorf("expired secret dropped from Secrets()")
	}
}

// TestStoreConcurrentUse exercises Want, Run's reloads, Secrets and
// Version at once, for the race detector.
func TestStoreConcurrentUse(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	a, b := newChain(t, "a"), newChain(t, "b")
	vol := newK8sVolume(t, filepath.Join(e.dir, "c"), k8sFiles(t, a))
	src := Source{CredentialName: "c"}
	e.s.Want([]Source{src}, []Source{src})
	e.run(t)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			for _, s := range e.s.Secrets() {
				_ = s.GetName()
			}
			_ = e.s.Version()
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < 10; i++ { // ends with a
		if i%2 == 0 {
			vol.swap(t, k8sFiles(t, b))
		} else {
			vol.swap(t, k8sFiles(t, a))
		}
		e.s.Want([]Source{src}, []Source{src, {CredentialName: "c"}})
		time.Sleep(2 * time.Millisecond)
	}
	<-done
	eventually(t, rotationDeadline, "last swap served", func() bool {
		s := e.s.Secrets()
		return len(s) == 2 && bytes.Equal(chainOf(s[1]), pemOf(a.leaf.certPEM(), a.inter.certPEM()))
	})
}
