package quickjs

import (
	"testing"

	"github.com/insertfn/insertfn/sdk/abi"
)

// fakeHost answers every consent call with one status and payload, and
// records the ids asked for.
type fakeHost struct {
	status  abi.ConsentStatus
	payload []byte
	ids     []string
}

func (h *fakeHost) ConsentLookup(id string, buf []byte) (abi.ConsentStatus, int) {
	h.ids = append(h.ids, "l:"+id)
	return h.status, copy(buf, h.payload) + max(0, len(h.payload)-len(buf))
}

func (h *fakeHost) ConsentCompare(id string, buf []byte) (abi.ConsentStatus, int) {
	h.ids = append(h.ids, "c:"+id)
	return h.status, copy(buf, h.payload) + max(0, len(h.payload)-len(buf))
}

const consentEcho = `function onTrack(event) {
  const c = insertfn.consent.compare(event.event === "by-id" ? "u9" : event);
  const l = insertfn.consent.lookup();
  throw new DropEvent(JSON.stringify({c: c, l: l}));
}`

func TestConsentWithoutAHostFindsNoRecord(t *testing.T) {
	inst := load(t, consentEcho, "")
	res := handle(t, inst, `{"type":"track","userId":"u1"}`)
	want := `{"c":{"status":"no_record","mismatch":false,"categoryMismatch":false,"purposeMismatch":false,"differences":[]},"l":{"status":"no_record"}}`
	if res.Verdict != abi.ResultDrop || res.Reason != want {
		t.Errorf("got %v %s\nwant %s", res.Verdict, res.Reason, want)
	}
}

func TestConsentDifferencesAndRecord(t *testing.T) {
	var entries []byte
	entries = abi.AppendEntry(entries, abi.FlagInEvent|abi.FlagEventConsented|abi.FlagInStored, "Ad\"vertising\n", "", 7)
	entries = abi.AppendEntry(entries, abi.FlagInEvent, "EventOnly", "", 0)
	entries = abi.AppendEntry(entries, abi.FlagPurpose|abi.FlagInEvent|abi.FlagInStored|abi.FlagStoredConsented, "gdpr", "ads", 9)
	host := &fakeHost{status: abi.ConsentDiffers, payload: entries}
	inst := load(t, `function onTrack(event) {
  const c = insertfn.consent.compare(event.event === "by-id" ? "u9" : event);
  throw new DropEvent(JSON.stringify(c));
}`, "")
	inst.SetHost(host)
	res := handle(t, inst, `{"type":"track","event":"by-id"}`)
	want := `{"status":"differs","mismatch":true,"categoryMismatch":true,"purposeMismatch":true,"differences":[` +
		`{"category":"Ad\"vertising\n","inEvent":true,"eventConsented":true,"inStored":true,"storedConsented":false,"storedAt":7},` +
		`{"category":"EventOnly","inEvent":true,"eventConsented":false,"inStored":false,"storedConsented":false,"storedAt":0},` +
		`{"regulation":"gdpr","purpose":"ads","inEvent":true,"eventConsented":false,"inStored":true,"storedConsented":true,"storedAt":9}]}`
	if res.Reason != want {
		t.Errorf("compare:\n got %s\nwant %s", res.Reason, want)
	}
	if len(host.ids) != 1 || host.ids[0] != "c:u9" {
		t.Errorf("host asked %v, want c:u9", host.ids)
	}

	host.status, host.ids = abi.ConsentFound, nil
	inst2 := load(t, `function onTrack() { throw new DropEvent(JSON.stringify(insertfn.consent.lookup())) }`, "")
	inst2.SetHost(host)
	res = handle(t, inst2, `{"type":"track","userId":"u1"}`)
	want = `{"status":"found","categories":{"Ad\"vertising\n":false,"EventOnly":false},"purposes":[{"regulation":"gdpr","purpose":"ads","consented":true,"timestamp":9}]}`
	if res.Reason != want {
		t.Errorf("lookup:\n got %s\nwant %s", res.Reason, want)
	}
	if len(host.ids) != 1 || host.ids[0] != "l:" {
		t.Errorf("host asked %v, want l: (the event's own ids)", host.ids)
	}
}

// A payload larger than the instance's buffer is asked for again with a
// buffer that holds it.
func TestConsentLargePayload(t *testing.T) {
	var entries []byte
	for i := range 200 {
		entries = abi.AppendEntry(entries, abi.FlagInEvent|abi.FlagInStored|abi.FlagStoredConsented, "Category"+string(rune('A'+i%26))+string(rune('a'+i/26)), "", int64(i))
	}
	host := &fakeHost{status: abi.ConsentDiffers, payload: entries}
	inst := load(t, `function onTrack() { const c = insertfn.consent.compare(); throw new DropEvent(c.differences.length + " " + c.categoryMismatch) }`, "")
	inst.SetHost(host)
	if res := handle(t, inst, `{"type":"track"}`); res.Reason != "200 true" {
		t.Errorf("got %q, want 200 differences and a category mismatch", res.Reason)
	}
	if len(host.ids) != 2 {
		t.Errorf("the host was asked %d times, want 2 (the second with room for the payload)", len(host.ids))
	}
}
