package source

import (
	"context"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"
	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	"github.com/egressd/egressd/serviceentry"
)

// ConditionValid is the status condition egressd writes on the Istio
// resources it reads: False while the resource has errors, its reason the
// Code of the first (serviceentry.ProblemCode: InvalidSpec, UnknownField,
// FailClosed, ...; ReasonInvalid if it has none), True (reason
// ReasonValid) once a resource that had errors is fixed. Resources that were never invalid get no condition, so that a
// cluster of valid resources costs no status writes.
const ConditionValid = "egressd.io/Valid"

// The reasons of ConditionValid.
const (
	ReasonInvalid = "Invalid"
	ReasonValid   = "Valid"
)

// EventReasonInvalid is the reason of the Warning Events egressd records on
// an invalid resource, one per error.
const EventReasonInvalid = "InvalidConfiguration"

// ValidationCode is the code of the status.validationMessages entry egressd
// keeps on an invalid resource (Istio's analyzers use IST0000-IST9999;
// their entries are left as they are). A validation message has no text:
// the condition's message says what is wrong.
const ValidationCode = "EGD0001"

// maxConditionMessage bounds a condition message; the Events carry every
// problem in full.
const maxConditionMessage = 4096

// statusReporter reports invalid resources on the resources themselves:
// Events and status. It is used from the Kube loop only (no locking).
type statusReporter struct {
	istio    istioclient.Interface
	recorder record.EventRecorder
	log      *zap.Logger
	// reported holds, per object, the errors last recorded as Events, so
	// that an error is recorded once, not on every compile.
	reported map[serviceentry.Ref]string
	// written holds, per object, the resourceVersion a status was written
	// over and what was written, so that a compile running before the
	// informer has seen the write does not write again.
	written map[serviceentry.Ref]writtenStatus
	now     func() *timestamppb.Timestamp
}

type writtenStatus struct{ resourceVersion, signature string }

func newStatusReporter(istio istioclient.Interface, rec record.EventRecorder, log *zap.Logger) *statusReporter {
	return &statusReporter{
		istio: istio, recorder: rec, log: log,
		reported: map[serviceentry.Ref]string{},
		written:  map[serviceentry.Ref]writtenStatus{},
		now:      timestamppb.Now,
	}
}

// reset forgets what was reported, when this replica stops being the
// leader: the next term reports afresh.
func (s *statusReporter) reset() {
	clear(s.reported)
	clear(s.written)
}

// statusTarget is one object whose status egressd may write.
type statusTarget struct {
	ref        serviceentry.Ref
	obj        runtime.Object
	meta       metav1.Object
	conditions []*metav1alpha1.IstioCondition
	messages   []*analysisv1alpha1.AnalysisMessageBase
	// update writes the given status fields on a copy of obj.
	update func(ctx context.Context, conds []*metav1alpha1.IstioCondition, msgs []*analysisv1alpha1.AnalysisMessageBase) error
}

// targets lists the objects of every kind with their status accessors.
func (s *statusReporter) targets(objs kubeObjects) []statusTarget {
	var out []statusTarget
	for _, o := range objs.entries {
		out = append(out, statusTarget{
			ref: kubeRef(serviceentry.KindServiceEntry, o), obj: o, meta: o,
			conditions: o.Status.Conditions, messages: o.Status.ValidationMessages,
			update: func(ctx context.Context, c []*metav1alpha1.IstioCondition, m []*analysisv1alpha1.AnalysisMessageBase) error {
				cp := o.DeepCopy()
				cp.Status.Conditions, cp.Status.ValidationMessages = c, m
				_, err := s.istio.NetworkingV1().ServiceEntries(o.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
				return err
			},
		})
	}
	for _, o := range objs.rules {
		out = append(out, statusTarget{
			ref: kubeRef(serviceentry.KindDestinationRule, o), obj: o, meta: o,
			conditions: o.Status.Conditions, messages: o.Status.ValidationMessages,
			update: func(ctx context.Context, c []*metav1alpha1.IstioCondition, m []*analysisv1alpha1.AnalysisMessageBase) error {
				cp := o.DeepCopy()
				cp.Status.Conditions, cp.Status.ValidationMessages = c, m
				_, err := s.istio.NetworkingV1().DestinationRules(o.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
				return err
			},
		})
	}
	for _, o := range objs.policies {
		out = append(out, statusTarget{
			ref: kubeRef(serviceentry.KindAuthorizationPolicy, o), obj: o, meta: o,
			conditions: o.Status.Conditions, messages: o.Status.ValidationMessages,
			update: func(ctx context.Context, c []*metav1alpha1.IstioCondition, m []*analysisv1alpha1.AnalysisMessageBase) error {
				cp := o.DeepCopy()
				cp.Status.Conditions, cp.Status.ValidationMessages = c, m
				_, err := s.istio.SecurityV1().AuthorizationPolicies(o.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
				return err
			},
		})
	}
	for _, o := range objs.peers {
		out = append(out, statusTarget{
			ref: kubeRef(serviceentry.KindPeerAuthentication, o), obj: o, meta: o,
			conditions: o.Status.Conditions, messages: o.Status.ValidationMessages,
			update: func(ctx context.Context, c []*metav1alpha1.IstioCondition, m []*analysisv1alpha1.AnalysisMessageBase) error {
				cp := o.DeepCopy()
				cp.Status.Conditions, cp.Status.ValidationMessages = c, m
				_, err := s.istio.SecurityV1().PeerAuthentications(o.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
				return err
			},
		})
	}
	return out
}

// reconcile records Events for newly found errors and brings each object's
// ConditionValid up to date. It reports whether a status write failed (the
// caller retries later).
func (s *statusReporter) reconcile(ctx context.Context, objs kubeObjects, problems []serviceentry.Problem) (failed bool) {
	errs := map[serviceentry.Ref][]serviceentry.Problem{}
	for _, p := range problems {
		if p.Severity != serviceentry.SeverityError || p.Ref.Name == "" {
			continue
		}
		ref := p.Ref
		ref.Line = 0
		errs[ref] = append(errs[ref], p)
	}
	present := map[serviceentry.Ref]bool{}
	for _, t := range s.targets(objs) {
		present[t.ref] = true
		ps := errs[t.ref]
		s.events(t, ps)
		if !s.status(ctx, t, ps) {
			failed = true
		}
	}
	for ref := range s.reported {
		if !present[ref] {
			delete(s.reported, ref)
		}
	}
	for ref := range s.written {
		if !present[ref] {
			delete(s.written, ref)
		}
	}
	return failed
}

// events records one Warning Event per error of t, when its errors differ
// from those last recorded.
func (s *statusReporter) events(t statusTarget, ps []serviceentry.Problem) {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = problemText(p)
	}
	sig := strings.Join(msgs, "\n")
	if sig == s.reported[t.ref] {
		return
	}
	if sig == "" {
		delete(s.reported, t.ref)
		return
	}
	s.reported[t.ref] = sig
	for _, m := range msgs {
		s.recorder.Event(t.obj, corev1.EventTypeWarning, EventReasonInvalid, m)
	}
}

// problemText is a Problem as an Event or condition states it: the field,
// then the message (the object is the Event's subject).
func problemText(p serviceentry.Problem) string {
	if p.Field == "" {
		return p.Message
	}
	return p.Field + ": " + p.Message
}

// status writes t's ConditionValid and validation message when they
// differ from what t has. It reports false if the write failed.
func (s *statusReporter) status(ctx context.Context, t statusTarget, ps []serviceentry.Problem) bool {
	conds, msgs, sig, changed := desiredStatus(t.conditions, t.messages, ps, t.meta.GetGeneration(), s.now)
	if !changed {
		delete(s.written, t.ref)
		return true
	}
	rv := t.meta.GetResourceVersion()
	if w, ok := s.written[t.ref]; ok && w.resourceVersion == rv && w.signature == sig {
		return true // written already; the informer has not seen it yet
	}
	if err := t.update(ctx, conds, msgs); err != nil {
		s.log.Warn("cannot write status", zap.String("kind", t.ref.Kind), zap.String("resource", t.ref.String()), zap.Error(err))
		return false
	}
	s.written[t.ref] = writtenStatus{resourceVersion: rv, signature: sig}
	s.log.Info("status written", zap.String("kind", t.ref.Kind), zap.String("resource", t.ref.String()),
		zap.String("condition", ConditionValid), zap.Bool("valid", len(ps) == 0))
	return true
}

// desiredStatus returns the conditions and validation messages an object
// with the errors ps should have, a signature of what egressd sets, and
// whether that differs from conds and msgs. Only ConditionValid and the
// ValidationCode message are touched; others (istiod's "Reconciled",
// Istio analyzer messages) are kept. The inputs are not modified.
func desiredStatus(conds []*metav1alpha1.IstioCondition, msgs []*analysisv1alpha1.AnalysisMessageBase,
	ps []serviceentry.Problem, generation int64, now func() *timestamppb.Timestamp,
) ([]*metav1alpha1.IstioCondition, []*analysisv1alpha1.AnalysisMessageBase, string, bool) {
	var cur *metav1alpha1.IstioCondition
	for _, c := range conds {
		if c.GetType() == ConditionValid {
			cur = c
		}
	}
	hasMsg := false
	for _, m := range msgs {
		if m.GetType().GetCode() == ValidationCode {
			hasMsg = true
		}
	}
	if len(ps) == 0 && cur == nil {
		if !hasMsg {
			return conds, msgs, "", false // never invalid: nothing of ours to write
		}
		return conds, withoutOurMessage(msgs), "", true // a stray message of ours
	}
	want := &metav1alpha1.IstioCondition{Type: ConditionValid, Status: "True", Reason: ReasonValid,
		Message: "accepted by egressd", ObservedGeneration: generation}
	if len(ps) > 0 {
		texts := make([]string, len(ps))
		for i, p := range ps {
			texts[i] = problemText(p)
		}
		msg := strings.Join(texts, "; ")
		if len(msg) > maxConditionMessage {
			msg = msg[:maxConditionMessage-3] + "..."
		}
		want.Status, want.Reason, want.Message = "False", ReasonInvalid, msg
		if c := ps[0].Code; c != "" {
			want.Reason = string(c)
		}
	}
	sig := fmt.Sprintf("%s\n%s\n%d\n%s", want.Status, want.Reason, generation, want.Message)
	changed := cur == nil || cur.GetStatus() != want.Status || cur.GetReason() != want.Reason ||
		cur.GetMessage() != want.Message || cur.GetObservedGeneration() != want.ObservedGeneration ||
		hasMsg != (len(ps) > 0)
	if !changed {
		return conds, msgs, sig, false
	}
	if cur != nil && cur.GetStatus() == want.Status {
		want.LastTransitionTime = cur.GetLastTransitionTime()
	} else {
		want.LastTransitionTime = now()
	}
	want.LastProbeTime = now()

	newConds := make([]*metav1alpha1.IstioCondition, 0, len(conds)+1)
	for _, c := range conds {
		if c.GetType() != ConditionValid {
			newConds = append(newConds, c)
		}
	}
	newConds = append(newConds, want)
	newMsgs := withoutOurMessage(msgs)
	if len(ps) > 0 {
		newMsgs = append(newMsgs, &analysisv1alpha1.AnalysisMessageBase{
			Type:  &analysisv1alpha1.AnalysisMessageBase_Type{Name: EventReasonInvalid, Code: ValidationCode},
			Level: analysisv1alpha1.AnalysisMessageBase_ERROR,
		})
	}
	return newConds, newMsgs, sig, true
}

// withoutOurMessage returns msgs without the ValidationCode entry (nil if
// none is left).
func withoutOurMessage(msgs []*analysisv1alpha1.AnalysisMessageBase) []*analysisv1alpha1.AnalysisMessageBase {
	var out []*analysisv1alpha1.AnalysisMessageBase
	for _, m := range msgs {
		if m.GetType().GetCode() != ValidationCode {
			out = append(out, m)
		}
	}
	return out
}
