package source

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CredentialSecret keeps the data of one existing Secret equal to Files,
// while this replica is the leader: the gateway pods mount it and read
// their xDS client certificate from it (Envoy watches the mounted folder,
// which the kubelet updates in place). egressd may only get and update
// that one Secret; it never creates or deletes Secrets, so the Secret is
// part of the installation (deploy/base), empty until the leader fills it.
type CredentialSecret struct {
	Kube            kubernetes.Interface
	Namespace, Name string
	// Files returns what the Secret must hold, by key.
	Files func() (map[string][]byte, error)
	// IsLeader reports whether this replica writes; nil: always.
	IsLeader func() bool
	// Interval is how often the Secret is checked even without Notify
	// (a deleted or edited Secret is put back); default 30 s.
	Interval time.Duration
	Log      *zap.Logger

	once   sync.Once
	notify chan struct{}
	// lastErr is the last failure logged, so a lasting one is logged once.
	lastErr string
}

func (c *CredentialSecret) init() {
	c.once.Do(func() {
		c.notify = make(chan struct{}, 1)
		if c.Interval <= 0 {
			c.Interval = 30 * time.Second
		}
		if c.Log == nil {
			c.Log = zap.NewNop()
		}
	})
}

// Notify makes Start write the Secret now (Files changed).
func (c *CredentialSecret) Notify() {
	c.init()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Start writes the Secret at once, then on every Notify and every
// Interval, until ctx ends. It returns nil.
func (c *CredentialSecret) Start(ctx context.Context) error {
	c.init()
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		if c.IsLeader == nil || c.IsLeader() {
			c.reconcile(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.notify:
		}
	}
}

// reconcile updates the Secret when its data differ from Files.
func (c *CredentialSecret) reconcile(ctx context.Context) {
	c.init()
	ref := c.Namespace + "/" + c.Name
	fail := func(msg string, err error) {
		if s := msg + err.Error(); s != c.lastErr {
			c.lastErr = s
			c.Log.Error(msg, zap.String("secret", ref), zap.Error(err))
		}
	}
	files, err := c.Files()
	if err != nil {
		fail("gateway xDS credentials not rendered", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := c.Kube.CoreV1().Secrets(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		fail("gateway xDS credentials Secret missing; create it (it is part of deploy/base), egressd only updates it", err)
		return
	}
	if err != nil {
		fail("reading the gateway xDS credentials Secret", err)
		return
	}
	if maps.EqualFunc(s.Data, files, bytes.Equal) {
		c.lastErr = ""
		return
	}
	s = s.DeepCopy()
	s.Data = files
	if _, err := c.Kube.CoreV1().Secrets(c.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		fail("updating the gateway xDS credentials Secret", fmt.Errorf("%w", err))
		return
	}
	c.lastErr = ""
	c.Log.Info("gateway xDS credentials written", zap.String("secret", ref), zap.Int("keys", len(files)))
}
