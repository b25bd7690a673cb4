"""Who holds an account: evidence for the ID-less rows paid into it.

The person index knows an account's owner where every ID-bearing row that carries it names one
ID. A shared account (a cadre's account receiving several villagers' payments, the
shared_account and cadre_account patterns) has several, so an ID-less payment into it had no
account evidence at all: 陈华's payment into 陈华's own account (which also received 刘国林's
payments) stayed unresolved, a false ghost clue. :func:`name_owner_sql` keeps, per account
*and name*, the one ID whose rows carry both: the ID-less row of that name paid into that
account is most likely that person's (the account's owner on ID-bearing rows is evidence).
"""

from __future__ import annotations


def name_owner_sql(mentions: str = "person_mention") -> str:
    """SELECT account, name, owner: per account and name, the one valid ID whose ID-bearing
    rows carry both (none where two IDs of that name share the account)."""
    return f"""SELECT account, name, min(id) AS owner FROM {mentions}
        WHERE account IS NOT NULL AND id IS NOT NULL AND name IS NOT NULL
        GROUP BY account, name HAVING count(DISTINCT id) = 1"""
