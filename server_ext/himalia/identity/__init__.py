"""Who is calling and what they may do: users, groups, projects, tokens, the audit trail."""
