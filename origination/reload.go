package origination

import (
	"errors"
	"time"

	"go.uber.org/zap"
)

// day is how often the expiry warning of one secret is repeated.
const day = 24 * time.Hour

// refresh loads e's files again and, when their content differs from the
// last good material, makes the new material e's. It reports whether it
// did. On error e keeps its last good material. The caller holds s.update.
func (s *Store) refresh(e *entry, now time.Time) (bool, error) {
	m, err := Load(e.src, s.cfg.CertDir, e.want, now)
	if err != nil {
		s.metrics.reloadKO.Inc()
		return false, err
	}
	sum := digest(m)
	if e.mat != nil && sum == e.sum {
		return false, nil
	}
	s.metrics.reloadOK.Inc()
	e.mat, e.sum, e.warned = m, sum, time.Time{}
	if e.want == WantKeyPair {
		e.secret = clientSecret(e.name, m)
		s.metrics.expiry.WithLabelValues(e.name).Set(float64(m.NotAfter.Unix()))
	} else {
		e.secret = caSecret(e.name, m)
	}
	return true, nil
}

// reload loads every wanted secret again, logs what changed or failed,
// warns of expiry, and publishes. It reports whether Secrets changed.
func (s *Store) reload() bool {
	s.update.Lock()
	defer s.update.Unlock()
	now := s.cfg.Now()
	changed := false
	for _, e := range s.sorted() {
		ch, err := s.refresh(e, now)
		switch {
		case err != nil:
			s.reportFailure(e, err)
		case ch:
			changed = true
			e.lastErr = ""
			s.log.Info("tls secret reloaded", s.fields(e)...)
		case e.lastErr != "":
			e.lastErr = ""
			s.log.Info("tls secret valid again", s.fields(e)...)
		}
		s.warnExpiry(e, now)
	}
	if changed {
		s.publish()
		s.log.Info("tls secrets changed", zap.String(keyVersion, s.Version()))
	}
	return changed
}

// reportFailure logs a failed reload: when its reason changed, and at every
// reload for an expired certificate, which must not go unnoticed.
func (s *Store) reportFailure(e *entry, err error) {
	msg := err.Error()
	expired := errors.Is(err, ErrExpired)
	if !expired && msg == e.lastErr {
		return
	}
	e.lastErr = msg
	fields := append(s.fields(e), zap.Bool(keyLastGood, e.mat != nil), zap.Error(err))
	switch {
	case expired:
		s.log.Error("client certificate has expired", fields...)
	case e.mat != nil:
		s.log.Error("tls secret reload failed; serving the last good material", fields...)
	default:
		s.log.Error("tls secret cannot be loaded; not served", fields...)
	}
}

// warnExpiry logs, at most once a day per secret, that a client
// certificate expires within ExpiryWarning.
func (s *Store) warnExpiry(e *entry, now time.Time) {
	if e.want != WantKeyPair || e.mat == nil {
		return
	}
	left := e.mat.NotAfter.Sub(now)
	if left <= 0 || left > s.cfg.ExpiryWarning {
		return
	}
	if !e.warned.IsZero() && now.Sub(e.warned) < day {
		return
	}
	e.warned = now
	days := int(left / day)
	s.log.Warn("client certificate expires in "+plural(days, "day"), append(s.fields(e), zap.Int(keyDays, days))...)
}

// fields describes a secret for logs: its name and, for a key pair, the
// leaf's subject and NotAfter. Never key material.
func (s *Store) fields(e *entry) []zap.Field {
	f := []zap.Field{zap.String(keySecret, e.name)}
	if e.mat != nil && e.mat.Leaf != nil {
		f = append(f, zap.String(keySubject, e.mat.Leaf.Subject.String()), zap.Time(keyNotAfter, e.mat.NotAfter))
	}
	return f
}
