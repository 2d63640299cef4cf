package origination

// Log field keys. Values are names, subjects and times; never key material.
const (
	keySecret   = "secret"
	keySubject  = "subject"
	keyNotAfter = "not_after"
	keyDays     = "days"
	keyFolder   = "folder"
	keyFolders  = "folders"
	keyVersion  = "version"
	keyLastGood = "serving_last_good"
	keyResync   = "resync"
)
