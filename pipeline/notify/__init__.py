"""Notify: telling people when they are needed, by signed webhook or e-mail, exactly once.

| module | holds |
|---|---|
| ``causes`` | what a person must hear about, read from the database |
| ``scan`` | the periodic scan: alerts recorded, conditions resolved, messages composed |
| ``compose`` | alerts → one message per channel, cause and window; the daily digest |
| ``channels`` | adding and removing channels; their secrets encrypted at rest |
| ``message`` | a message on its way out, and the sender contract |
| ``deliver`` | one message sent once: committed first, claimed, never resent blindly |
| ``webhook`` | the signed JSON POST, shaped for Slack, Discord or n8n |
| ``email`` | the message over SMTP |

Causes: a post failed, ended ``unknown`` or was missed; a publish target needs
re-authorisation; a publishing quota is full; a calendar is broken; no GPU worker is running.
"""
