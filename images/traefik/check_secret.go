package auth

// Written by images/build.py into its copy of Traefik's source: Traefik imports its fork of
// go-http-auth (github.com/containous/go-http-auth), which the Go module proxy does not serve,
// and upstream github.com/abbot/go-http-auth v0.4.0 (the only version the proxy lists) has no
// exported CheckSecret. This is the same comparison through v0.4.0's own BasicAuth.CheckAuth:
// the htpasswd secret's prefix picks MD5-crypt (apr1), {SHA} or bcrypt.

import (
	"net/http"

	goauth "github.com/abbot/go-http-auth"
)

// checkSecret reports whether password matches the htpasswd secret.
func checkSecret(password, secret string) bool {
	check := &goauth.BasicAuth{Secrets: func(string, string) string { return secret }}
	request := &http.Request{Header: http.Header{}}
	request.SetBasicAuth("user", password)
	return check.CheckAuth(request) != ""
}
