"""The Steering Committee: its membership (`membership`), a round's meeting and funds
(`meeting`), the members' review bundles (`bundles`) and the decisions recorded on its
behalf (`decisions`)."""
