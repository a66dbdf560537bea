package hooks

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
)

func postWebhook(parent context.Context, cfg Config, ev Event) error {
	u, err := url.Parse(cfg.Webhook)
	if err != nil { // Validate has checked it
		return fmt.Errorf("hook webhook: %w", err)
	}
	name := redact(u)
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("hook webhook %s: encode event: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(parent, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("hook webhook %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	// A transport of its own without keep-alives: hooks are rare, and no
	// idle connection outlives Run.
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect would turn the POST into a GET or send the token
		// elsewhere: report it instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query (and secrets) included.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		switch {
		case parent.Err() != nil:
			return fmt.Errorf("hook webhook %s: stopped: %w", name, parent.Err())
		case ctx.Err() != nil:
			return fmt.Errorf("hook webhook %s: no response within the %s timeout", name, cfg.Timeout)
		}
		return fmt.Errorf("hook webhook %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, outputLimit+1))
	msg := strings.TrimSpace(strings.ToValidUTF8(string(snippet[:min(len(snippet), outputLimit)]), "\uFFFD"))
	if len(snippet) > outputLimit {
		msg += "…"
	}
	if msg == "" {
		return fmt.Errorf("hook webhook %s: %s", name, resp.Status)
	}
	return fmt.Errorf("hook webhook %s: %s: %q", name, resp.Status, msg)
}
