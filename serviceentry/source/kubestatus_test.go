package source

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"
	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	metav1alpha1 "istio.io/api/meta/v1alpha1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/reference"

	"github.com/egressd/egressd/serviceentry"
)

// The real recorder names an Event's object through eventScheme, so the
// Istio kinds (whose informer objects carry no TypeMeta) must be in it.
func TestEventSchemeKnowsIstioKinds(t *testing.T) {
	s := eventScheme()
	ref, err := reference.GetReference(s, serviceEntry("default", "api", "api.example.com"))
	if err != nil || ref.Kind != "ServiceEntry" || ref.APIVersion != "networking.istio.io/v1" || ref.Name != "api" {
		t.Errorf("reference %+v, %v", ref, err)
	}
	ref, err = reference.GetReference(s, &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}})
	if err != nil || ref.Kind != "AuthorizationPolicy" {
		t.Errorf("reference %+v, %v", ref, err)
	}
}

func TestDesiredStatus(t *testing.T) {
	then := timestamppb.New(timestamppb.Now().AsTime().Add(-3600e9))
	now := func() *timestamppb.Timestamp { return timestamppb.Now() }
	reconciled := &metav1alpha1.IstioCondition{Type: "Reconciled", Status: "True"}
	istioMsg := &analysisv1alpha1.AnalysisMessageBase{Type: &analysisv1alpha1.AnalysisMessageBase_Type{Code: "IST0101"}}
	bad := []serviceentry.Problem{{Field: "spec.hosts[0]", Message: "no", Severity: serviceentry.SeverityError}}
	invalid := &metav1alpha1.IstioCondition{Type: ConditionValid, Status: "False", Reason: ReasonInvalid,
		Message: "spec.hosts[0]: no", ObservedGeneration: 1, LastTransitionTime: then}
	valid := &metav1alpha1.IstioCondition{Type: ConditionValid, Status: "True", Reason: ReasonValid,
		Message: "accepted by egressd", ObservedGeneration: 1, LastTransitionTime: then}
	ours := &analysisv1alpha1.AnalysisMessageBase{Type: &analysisv1alpha1.AnalysisMessageBase_Type{Code: ValidationCode}}

	tests := map[string]struct {
		conds      []*metav1alpha1.IstioCondition
		msgs       []*analysisv1alpha1.AnalysisMessageBase
		problems   []serviceentry.Problem
		changed    bool
		wantStatus string // of ConditionValid; "" for none
		wantOurs   bool
		keepsTime  bool
		otherKept  bool
	}{
		"never invalid":            {conds: []*metav1alpha1.IstioCondition{reconciled}, changed: false, otherKept: true},
		"becomes invalid":          {conds: []*metav1alpha1.IstioCondition{reconciled}, msgs: []*analysisv1alpha1.AnalysisMessageBase{istioMsg}, problems: bad, changed: true, wantStatus: "False", wantOurs: true, otherKept: true},
		"still invalid, unchanged": {conds: []*metav1alpha1.IstioCondition{invalid}, msgs: []*analysisv1alpha1.AnalysisMessageBase{ours}, problems: bad, changed: false, wantStatus: "False", wantOurs: true, keepsTime: true},
		"fixed":                    {conds: []*metav1alpha1.IstioCondition{reconciled, invalid}, msgs: []*analysisv1alpha1.AnalysisMessageBase{istioMsg, ours}, changed: true, wantStatus: "True", otherKept: true},
		"valid, unchanged":         {conds: []*metav1alpha1.IstioCondition{valid}, changed: false, wantStatus: "True", keepsTime: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			conds, msgs, _, changed := desiredStatus(tc.conds, tc.msgs, tc.problems, 1, now)
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v", changed, tc.changed)
			}
			var got *metav1alpha1.IstioCondition
			other := false
			for _, c := range conds {
				if c.GetType() == ConditionValid {
					got = c
				} else {
					other = true
				}
			}
			if tc.wantStatus == "" && got != nil || tc.wantStatus != "" && got.GetStatus() != tc.wantStatus {
				t.Errorf("condition %v, want status %q", got, tc.wantStatus)
			}
			if tc.keepsTime && !got.GetLastTransitionTime().AsTime().Equal(then.AsTime()) {
				t.Error("transition time changed without a transition")
			}
			if changed && got != nil && got.GetLastTransitionTime().AsTime().Equal(then.AsTime()) {
				t.Error("transition time kept across a transition")
			}
			if tc.otherKept && !other {
				t.Error("another controller's condition dropped")
			}
			hasOurs, hasIstio := false, false
			for _, m := range msgs {
				hasOurs = hasOurs || m.GetType().GetCode() == ValidationCode
				hasIstio = hasIstio || m.GetType().GetCode() == "IST0101"
			}
			if hasOurs != tc.wantOurs {
				t.Errorf("our validation message present = %v, want %v", hasOurs, tc.wantOurs)
			}
			for _, m := range tc.msgs {
				if m == istioMsg && !hasIstio {
					t.Error("Istio's validation message dropped")
				}
			}
		})
	}
}
