// Package serviceentry is the first stage of egressd's pipeline: it decodes
// Istio ServiceEntry resources (networking.istio.io v1, v1beta1, v1alpha3),
// validates them with Istio's rules plus egressd's host rules, and compiles
// the valid ones into one immutable Allowlist snapshot.
//
// The package is pure: it never touches the network or the file system.
// Sources (serviceentry/source) read bytes and objects; servers (DNS proxy,
// xDS translation) read the compiled Allowlist.
//
//	bytes -> Decode -> []Object -> Validate -> []Entry -> Compile -> *Allowlist
//
// An invalid resource yields Problems that name the file, the resource and
// the field, and is skipped; it never poisons the rest of the snapshot.
package serviceentry
