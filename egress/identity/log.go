package identity

// Log field keys. Values are identities, serials and times; never key
// material.
const (
	keyPrincipal    = "principal"
	keySerial       = "serial"
	keyNotAfter     = "not_after"
	keyRenewAt      = "renew_at"
	keyServingUntil = "serving_until"
)
