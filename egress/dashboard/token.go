package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// TokenCookie is the cookie RequireToken sets for a browser that presented
// the token as ?token=.
const TokenCookie = "egressd_token"

// RequireToken lets a request through to next only when it carries token:
// as "Authorization: Bearer <token>", as the cookie TokenCookie, or as the
// query parameter "token" (for a browser's first visit). A valid ?token=
// sets the cookie (HttpOnly, SameSite=Strict, Path=/), and a page
// navigation (GET asking for HTML) is then redirected to the same URL
// without the token, so it stays out of the address bar and history.
// Everything else gets 401. Comparisons are constant-time. An empty token
// turns protection off: next is returned as it is.
func RequireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	valid := func(got string) bool {
		if got == "" {
			return false
		}
		sum := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := r.Header.Get("Authorization"); auth != "" {
			scheme, cred, ok := strings.Cut(auth, " ")
			if ok && strings.EqualFold(scheme, "Bearer") && valid(strings.TrimSpace(cred)) {
				next.ServeHTTP(w, r)
				return
			}
		}
		if q := r.URL.Query(); q.Has("token") {
			if valid(q.Get("token")) {
				http.SetCookie(w, &http.Cookie{
					Name: TokenCookie, Value: q.Get("token"), Path: "/",
					HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
				})
				if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
					q.Del("token")
					u := *r.URL
					u.RawQuery = q.Encode()
					w.Header().Set("Referrer-Policy", "no-referrer")
					http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
					return
				}
				next.ServeHTTP(w, r)
				return
			}
		}
		if c, err := r.Cookie(TokenCookie); err == nil && valid(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="egressd"`)
		http.Error(w, "unauthorized: send Authorization: Bearer <token>, or open the dashboard once with ?token=<token>", http.StatusUnauthorized)
	})
}
