package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/insertfn/insertfn/functions"
)

// Client calls the admin API, for the CLI (insertfn deploy, functions,
// rollback). The zero value is not usable: set URL and Token.
type Client struct {
	// URL is the admin API's base, such as http://127.0.0.1:8081.
	URL string
	// Token is the bearer token.
	Token string
	// HTTP sends the requests; nil: http.DefaultClient.
	HTTP *http.Client
}

// APIError is an answer of the admin API other than a success.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the API's {"error"} message, or the body's start when the
	// answer was not the API's JSON.
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Deploy uploads a new version of m.Name and makes it live (PUT
// /admin/functions/{name}). m carries the settings, limits, failure
// policy and retries; its Wasm is ignored.
//
// # Results
//   - the version, now active; its Unchanged is set when it already was
//     (the same wasm and manifest: the server changed nothing);
//   - an *[APIError] with status 422 and the reason when the module or
//     manifest was refused (the old version stays live), or another
//     error.
func (c *Client) Deploy(ctx context.Context, m functions.Manifest, wasm []byte) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	m.Wasm = ""
	hdr, err := json.Marshal(&m)
	if err != nil {
		return info, fmt.Errorf("admin: manifest: %w", err)
	}
	err = c.do(ctx, http.MethodPut, "/admin/functions/"+url.PathEscape(m.Name), nil, bytes.NewReader(wasm),
		map[string]string{ManifestHeader: string(hdr), "Content-Type": "application/wasm"}, &info)
	return info, err
}

// Functions lists the functions and their versions (GET /admin/functions).
func (c *Client) Functions(ctx context.Context) ([]FunctionInfo, error) {
	var out FunctionList
	if err := c.do(ctx, http.MethodGet, "/admin/functions", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Functions, nil
}

// Rollback makes the previous version of a function live again (POST
// /admin/functions/{name}/rollback).
//
// # Results
//   - the version, now active;
//   - an *[APIError] with status 409 when there is no previous version.
func (c *Client) Rollback(ctx context.Context, name string) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/rollback", nil, nil, nil, &info)
	return info, err
}

// Activate makes a stored version of a function live (POST
// /admin/functions/{name}/activate?version=HASH).
func (c *Client) Activate(ctx context.Context, name, hash string) (functions.VersionInfo, error) {
	var info functions.VersionInfo
	err := c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/activate", url.Values{"version": {hash}}, nil, nil, &info)
	return info, err
}

// Delete removes a function and its stored versions (DELETE
// /admin/functions/{name}).
func (c *Client) Delete(ctx context.Context, name string) error {
	var out DeleteResult
	return c.do(ctx, http.MethodDelete, "/admin/functions/"+url.PathEscape(name), nil, nil, nil, &out)
}

// Test runs an event through a function's live version (POST
// /admin/functions/{name}/test); req.Settings and req.Consent are
// optional.
func (c *Client) Test(ctx context.Context, name string, req TestRequest) (TestResult, error) {
	var out TestResult
	body, err := json.Marshal(&req)
	if err != nil {
		return out, fmt.Errorf("admin: test request: %w", err)
	}
	err = c.do(ctx, http.MethodPost, "/admin/functions/"+url.PathEscape(name)+"/test", nil, bytes.NewReader(body),
		map[string]string{"Content-Type": "application/json"}, &out)
	return out, err
}

// do sends one request and decodes the JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader, header map[string]string, out any) error {
	if c.URL == "" {
		return errors.New("admin: no admin API URL (--admin http://127.0.0.1:8081)")
	}
	u := strings.TrimRight(c.URL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	if err != nil {
		return fmt.Errorf("admin: %s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e errorBody
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b[:min(len(b), 200)]))
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin: %s %s: the answer is not what the admin API sends: %w", method, path, err)
	}
	return nil
}
