package jetstream

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry counts. An item's Attempts counts its Retry calls only: a
// redelivery after a host died or closed does not count (the contract of
// queue.Item). A stream counts every delivery alike, so the count lives
// beside it: each Retry first stores the item's new count as the one
// message of the subject P.a.<topic>.<seq> in the stream P_ATTEMPTS;
// Next reads it for the items delivered more than once (a first delivery
// has none), and a settle (Ack, Move, Dead) purges it. The stream keeps a
// count at most attemptsMaxAge: one whose purge was lost (a crash) does
// not stay for ever.
const attemptsMaxAge = 7 * 24 * time.Hour

// attemptsStream returns the stream of Retry counts, creating it when
// create is set; nil (and no error) when it does not exist and create is
// not set.
func (q *Queue) attemptsStream(ctx context.Context, create bool) (jetstream.Stream, error) {
	q.sharedMu.Lock()
	defer q.sharedMu.Unlock()
	if q.attemptsStr != nil {
		return q.attemptsStr, nil
	}
	name := attemptsStream(q.prefix)
	var s jetstream.Stream
	var err error
	if create {
		cfg := q.streamConfig(name, kindAttempts, nil, q.prefix+".a.>")
		cfg.Description = "insertfn queue: the Retry counts of items"
		cfg.MaxMsgsPerSubject = 1
		cfg.MaxAge = attemptsMaxAge
		cfg.Discard = jetstream.DiscardOld
		s, err = q.createStream(ctx, cfg)
	} else {
		s, err = q.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	q.attemptsStr = s
	return s, nil
}

func attemptsSubject(t *topic, seq uint64) string {
	return t.names.attempts + "." + strconv.FormatUint(seq, 10)
}

// putAttempts stores n as the Retry count of item seq of t.
func (q *Queue) putAttempts(ctx context.Context, t *topic, seq uint64, n int) error {
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	if _, err := q.attemptsStream(ctx, true); err != nil {
		return err
	}
	_, err := q.js.PublishMsg(ctx, &nats.Msg{Subject: attemptsSubject(t, seq), Data: strconv.AppendInt(nil, int64(n), 10)},
		jetstream.WithExpectStream(attemptsStream(q.prefix)))
	return err
}

// attempts fills in the Retry counts of the messages of fl delivered more
// than once. A count that cannot be read is taken as 0 (one retry more
// than configured rather than a dead letter too early).
func (q *Queue) attempts(ctx context.Context, t *topic, fl []*flight) {
	var again []*flight
	for _, f := range fl {
		if f.delivered > 1 {
			again = append(again, f)
		}
	}
	if len(again) == 0 {
		return
	}
	ctx, cancel := q.opCtx(ctx)
	defer cancel()
	s, err := q.attemptsStream(ctx, false)
	if err != nil || s == nil {
		for _, f := range again {
			f.record = err != nil
		}
		return
	}
	_ = parallel(len(again), func(i int) error {
		f := again[i]
		m, err := s.GetLastMsgForSubject(ctx, attemptsSubject(t, f.seq))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			f.record = true
		default:
			f.record = true
			f.attempts, _ = strconv.Atoi(string(m.Data))
		}
		return nil
	})
}

// dropAttempts purges the Retry counts of items of t settled for good,
// in the background (Close waits for it).
func (q *Queue) dropAttempts(t *topic, seqs []uint64) {
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		ctx, cancel := q.opCtx(context.Background())
		defer cancel()
		s, err := q.attemptsStream(ctx, false)
		if err != nil || s == nil {
			return
		}
		_ = parallel(len(seqs), func(i int) error {
			return s.Purge(ctx, jetstream.WithPurgeSubject(attemptsSubject(t, seqs[i])))
		})
	}()
}
