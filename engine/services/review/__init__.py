"""The Global Mercury Partnership review of a round, one module per job: the register
of reviewers (`register`), the assignment (`assignment`), the invitations (`invitations`),
the reviewer's sign-in (`access`) and work (`work`), the stage's day (`reminders`), the
messages (`messages`), and what the secretariat and committee read (`views`); `state`
holds what they share."""
