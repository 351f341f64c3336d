"""The demo (`sip demo`): rounds 1 and 4 run through the engine as a secretariat would,
with invented applications, reviewers, reviews and committee members. It uses the
engine's services and flows, as a secretariat's own script would; the simulated
reviewers read their messages from the outbox, as they would from their mail."""
