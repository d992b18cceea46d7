"""A simulated live pipeline: it changes PostgreSQL rows and writes, into the same target, the events
the site's live handlers write for those changes (docs/sources.md's fan-out tables, transcribed by hand
here, independently of the engine's catalog):

- an INSERT: the row's events (+1, +amount) at the change's time;
- a DELETE: the negation of the row's events at the deletion's time;
- a handled UPDATE (a review's `recommended` flip, a benefactor's award or new unitAmount): −old and
  +new at the update's time.

Every change that touches a row created before the cutoff is also recorded in `gap`: what a plain
replay of today's rows, added to these live events, gets wrong (the deletes and handled updates of
pre-cutoff rows, T12/T13). New rows and awards after the cutoff are not in the gap: their live
events are the only ones there are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg

Event = tuple[str, int, int, str, int]
"""(entityType, entityId, userId, metricType, metricValue)"""
UserKey = tuple[str, int, str, int]
"""(entityType, entityId, metricType, userId)"""

REACTION_COLS = '"id", "imageId", "userId", "reaction", "createdAt", "updatedAt"'


class LivePipeline:
    def __init__(
        self, pg_url: str, ch_client: Any, target: str, cutoff: datetime, *, version: int | None = None
    ) -> None:
        self.pg_url = pg_url
        self.ch = ch_client
        self.target = target
        self.cutoff = cutoff
        self.version = version
        self.written: list[tuple[Event, datetime]] = []
        self.gap: dict[UserKey, int] = defaultdict(int)

    # -- plumbing --------------------------------------------------------------------------------
    def _pg(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            cur = conn.execute(sql, tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def _emit(self, events: list[Event], at: datetime, sign: int, *, pre_cutoff_row: bool) -> None:
        rows = [
            [et, eid, uid, mt, sign * v, at] + ([self.version] if self.version is not None else [])
            for et, eid, uid, mt, v in events
            # the live drop rule: no entity, no user (0 or NULL)
            if eid is not None and uid not in (None, 0)
        ]
        if not rows:
            return
        cols = ["entityType", "entityId", "userId", "metricType", "metricValue", "createdAt"]
        self.ch.insert(
            self.target,
            rows,
            column_names=cols + (["version"] if self.version is not None else []),
            settings={"async_insert": 0},
        )
        for r in rows:
            self.written.append(((r[0], r[1], r[2], r[3], r[4]), at))
            if pre_cutoff_row:
                self.gap[(r[0], r[1], r[3], r[2])] += r[4]

    # -- ImageReaction (docs/sources.md §2) ------------------------------------------------------------
    def _reaction_events(self, image_id: int, user_id: int, reaction: str) -> list[Event]:
        img = self._pg('SELECT "postId", "userId" FROM "Image" WHERE "id" = %s', (image_id,))
        out: list[Event] = [("Image", image_id, user_id, reaction, 1)]
        if img:
            post, owner = img[0]
            if post is not None:
                out += [("Post", post, user_id, reaction, 1), ("Post", post, user_id, "reactionCount", 1)]
            out.append(("User", owner, user_id, "reactionCount", 1))
        return out

    def add_reaction(self, rid: int, image_id: int, user_id: int, reaction: str, at: datetime) -> None:
        self._pg(
            f'INSERT INTO "ImageReaction" ({REACTION_COLS}) VALUES (%s, %s, %s, %s, %s, %s)',
            (rid, image_id, user_id, reaction, at, at),
        )
        if at >= self.cutoff:
            self._emit(self._reaction_events(image_id, user_id, reaction), at, +1, pre_cutoff_row=False)

    def delete_reaction(self, rid: int, at: datetime) -> None:
        ((image_id, user_id, reaction, created),) = self._pg(
            'SELECT "imageId", "userId", "reaction"::text, "createdAt" FROM "ImageReaction" WHERE "id" = %s', (rid,)
        )
        events = self._reaction_events(image_id, user_id, reaction)
        self._pg('DELETE FROM "ImageReaction" WHERE "id" = %s', (rid,))
        self._emit(events, at, -1, pre_cutoff_row=created < self.cutoff)

    # -- UserEngagement (§1) ---------------------------------------------------------------------
    @staticmethod
    def _engagement_events(user_id: int, target: int, kind: str) -> list[Event]:
        if kind == "Follow":
            return [("User", user_id, user_id, "followingCount", 1), ("User", target, user_id, "followerCount", 1)]
        if kind == "Hide":
            return [("User", target, user_id, "hiddenCount", 1)]
        return []

    def add_engagement(self, user_id: int, target: int, kind: str, at: datetime) -> None:
        self._pg(
            'INSERT INTO "UserEngagement" ("userId", "targetUserId", "type", "createdAt") VALUES (%s, %s, %s, %s)',
            (user_id, target, kind, at),
        )
        if at >= self.cutoff:
            self._emit(self._engagement_events(user_id, target, kind), at, +1, pre_cutoff_row=False)

    def delete_engagement(self, user_id: int, target: int, at: datetime) -> None:
        ((kind, created),) = self._pg(
            'SELECT "type"::text, "createdAt" FROM "UserEngagement" WHERE "userId" = %s AND "targetUserId" = %s',
            (user_id, target),
        )
        self._pg('DELETE FROM "UserEngagement" WHERE "userId" = %s AND "targetUserId" = %s', (user_id, target))
        self._emit(self._engagement_events(user_id, target, kind), at, -1, pre_cutoff_row=created < self.cutoff)

    # -- CollectionItem (§7) ---------------------------------------------------------------------
    @staticmethod
    def _item_events(collection: int, image: int | None, post: int | None, adder: int) -> list[Event]:
        out: list[Event] = [("Collection", collection, adder, "itemCount", 1)]
        if image is not None:
            out.append(("Image", image, adder, "Collection", 1))
        if post is not None:
            out.append(("Post", post, adder, "collectedCount", 1))
        return out

    def add_item(
        self, iid: int, collection: int, image: int | None, post: int | None, adder: int, at: datetime
    ) -> None:
        self._pg(
            'INSERT INTO "CollectionItem" ("id", "collectionId", "imageId", "postId", "addedById", "status", '
            "\"createdAt\") VALUES (%s, %s, %s, %s, %s, 'ACCEPTED', %s)",
            (iid, collection, image, post, adder, at),
        )
        if at >= self.cutoff:
            self._emit(self._item_events(collection, image, post, adder), at, +1, pre_cutoff_row=False)

    def delete_item(self, iid: int, at: datetime) -> None:
        ((collection, image, post, adder, created),) = self._pg(
            'SELECT "collectionId", "imageId", "postId", "addedById", "createdAt" FROM "CollectionItem" WHERE "id" = %s',
            (iid,),
        )
        self._pg('DELETE FROM "CollectionItem" WHERE "id" = %s', (iid,))
        self._emit(self._item_events(collection, image, post, adder), at, -1, pre_cutoff_row=created < self.cutoff)

    # -- CommentV2 on a root thread (§10) ----------------------------------------------------------
    def add_comment(self, cid: int, thread: int, post: int, user_id: int, at: datetime) -> None:
        self._pg(
            'INSERT INTO "CommentV2" ("id", "content", "threadId", "userId", "createdAt", "updatedAt") '
            "VALUES (%s, 'x', %s, %s, %s, %s)",
            (cid, thread, user_id, at, at),
        )
        if at >= self.cutoff:
            self._emit([("Post", post, user_id, "commentCount", 1)], at, +1, pre_cutoff_row=False)

    def delete_comment(self, cid: int, post: int, at: datetime) -> None:
        ((user_id, created),) = self._pg('SELECT "userId", "createdAt" FROM "CommentV2" WHERE "id" = %s', (cid,))
        self._pg('DELETE FROM "CommentV2" WHERE "id" = %s', (cid,))
        self._emit([("Post", post, user_id, "commentCount", 1)], at, -1, pre_cutoff_row=created < self.cutoff)

    # -- ResourceReview (§6): the flip of `recommended` is a handled update -------------------------
    def flip_review(self, rid: int, at: datetime) -> None:
        ((model, version, user_id, up, created),) = self._pg(
            'SELECT "modelId", "modelVersionId", "userId", "recommended", "createdAt" FROM "ResourceReview" '
            'WHERE "id" = %s',
            (rid,),
        )
        old, new = ("thumbsUpCount", "thumbsDownCount") if up else ("thumbsDownCount", "thumbsUpCount")
        self._pg(
            'UPDATE "ResourceReview" SET "recommended" = NOT "recommended", "updatedAt" = %s WHERE "id" = %s', (at, rid)
        )
        pre = created < self.cutoff
        self._emit(
            [("Model", model, user_id, old, 1), ("ModelVersion", version, user_id, old, 1)], at, -1, pre_cutoff_row=pre
        )
        self._emit(
            [("Model", model, user_id, new, 1), ("ModelVersion", version, user_id, new, 1)], at, +1, pre_cutoff_row=pre
        )

    # -- BountyBenefactor (§17): the award and a new unitAmount are handled updates -----------------
    def award(self, bounty: int, user_id: int, entry: int, at: datetime) -> None:
        ((amount,),) = self._pg(
            'SELECT "unitAmount" FROM "BountyBenefactor" WHERE "bountyId" = %s AND "userId" = %s', (bounty, user_id)
        )
        self._pg(
            'UPDATE "BountyBenefactor" SET "awardedToId" = %s, "awardedAt" = %s, "updatedAt" = %s '
            'WHERE "bountyId" = %s AND "userId" = %s',
            (entry, at, at, bounty, user_id),
        )
        # A transition into the awarded state after the cutoff: its live event is the only one.
        self._emit([("BountyEntry", entry, user_id, "unitAmount", amount)], at, +1, pre_cutoff_row=False)

    def change_amount(self, bounty: int, user_id: int, amount: int, at: datetime) -> None:
        ((old, entry, awarded_at, created),) = self._pg(
            'SELECT "unitAmount", "awardedToId", COALESCE("awardedAt", "updatedAt"), "createdAt" FROM "BountyBenefactor" '
            'WHERE "bountyId" = %s AND "userId" = %s',
            (bounty, user_id),
        )
        self._pg(
            'UPDATE "BountyBenefactor" SET "unitAmount" = %s, "updatedAt" = %s WHERE "bountyId" = %s AND "userId" = %s',
            (amount, at, bounty, user_id),
        )
        # −old and +new share their key: a second apart, or a ReplacingMergeTree target keeps one (T4).
        later = at + timedelta(seconds=1)
        self._emit([("Bounty", bounty, user_id, "unitAmount", old)], at, -1, pre_cutoff_row=created < self.cutoff)
        self._emit([("Bounty", bounty, user_id, "unitAmount", amount)], later, +1, pre_cutoff_row=created < self.cutoff)
        if entry is not None:  # the entry's line is the award's: before the cutoff or not, on its own
            pre = awarded_at < self.cutoff
            self._emit([("BountyEntry", entry, user_id, "unitAmount", old)], at, -1, pre_cutoff_row=pre)
            self._emit([("BountyEntry", entry, user_id, "unitAmount", amount)], later, +1, pre_cutoff_row=pre)
