"""Email: one sender for every email the product sends (alerts, account verification, password
reset), through the official `resend` client, or into a local outbox without a provider."""
