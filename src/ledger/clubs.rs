//! Fan clubs: one artist's clubs with names unique per artist, memberships over time (one open
//! club per artist per user), and the copies members bought while members (the club chart).

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Row};
use unicode_normalization::UnicodeNormalization;

use super::{Backend, Ledger, LedgerError};

/// Longest club name, characters (after trimming and NFC).
pub const MAX_CLUB_NAME: usize = 40;

/// A club and its members now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Club {
    /// Its id (`club-` and 16 hex digits).
    pub id: String,
    /// The artist's slug.
    pub artist_id: String,
    /// The name as given (trimmed, NFC).
    pub name: String,
    /// Members now.
    pub members: i64,
}

/// A user's membership of a club.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The club, as it is after the change.
    pub club: Club,
    /// The member.
    pub user: String,
    /// Whether the user is a member now (false after leaving).
    pub member: bool,
}

/// Copies of one album bought by a club's members while members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClubSales {
    /// The club.
    pub club_id: String,
    /// The album.
    pub album: String,
    /// Net copies.
    pub units: i64,
}

/// A club name made canonical (trimmed, NFC), or why it is refused: 1 to
/// [`MAX_CLUB_NAME`] letters, digits, spaces and `- _ . '`.
pub fn club_name(raw: &str) -> Result<String, String> {
    let name: String = raw.trim().nfc().collect();
    let n = name.chars().count();
    if n == 0 || n > MAX_CLUB_NAME {
        return Err(format!("must be 1 to {MAX_CLUB_NAME} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\''))
    {
        return Err("may contain only letters, digits, spaces and - _ . '".into());
    }
    Ok(name)
}

/// A write to the clubs.
enum ClubOp<'a> {
    Create {
        artist_id: &'a str,
        name: &'a str,
        user: &'a str,
    },
    Join {
        club_id: &'a str,
        user: &'a str,
    },
    Leave {
        club_id: &'a str,
        user: &'a str,
    },
}

impl Ledger {
    /// Creates a club of `artist_id` named `name` (already [`club_name`]) and makes `user` its
    /// first member (leaving any other club of the artist).
    pub async fn create_club(
        &self,
        artist_id: &str,
        name: &str,
        user: &str,
        now: i64,
    ) -> Result<Membership, LedgerError> {
        self.club_write(
            &ClubOp::Create {
                artist_id,
                name,
                user,
            },
            now,
        )
        .await
    }

    /// `user` joins `club_id`, leaving any other club of its artist; joining the club one is
    /// in changes nothing.
    pub async fn join_club(
        &self,
        club_id: &str,
        user: &str,
        now: i64,
    ) -> Result<Membership, LedgerError> {
        self.club_write(&ClubOp::Join { club_id, user }, now).await
    }

    /// `user` leaves `club_id` (nothing changes when not a member).
    pub async fn leave_club(
        &self,
        club_id: &str,
        user: &str,
        now: i64,
    ) -> Result<Membership, LedgerError> {
        self.club_write(&ClubOp::Leave { club_id, user }, now).await
    }

    async fn club_write(&self, op: &ClubOp<'_>, now: i64) -> Result<Membership, LedgerError> {
        self.write_retrying(
            |mut conn| async move {
                let result = club_write_on(&mut conn, self.backend, op, now).await;
                if let Ok(m) = &result {
                    self.libraries.committed([m.user.as_str()]);
                }
                (conn, result)
            },
            |_| {},
        )
        .await
    }

    /// The clubs of `artist_id`, most members first, then by name.
    pub async fn clubs(&self, artist_id: &str) -> Result<Vec<Club>, LedgerError> {
        let rows = sqlx::query(
            "SELECT c.id AS id, c.artist_id AS artist_id, c.name AS name, \
             (SELECT COUNT(*) FROM club_members m WHERE m.club_id = c.id \
              AND m.left_at IS NULL) AS members \
             FROM clubs c WHERE c.artist_id = $1",
        )
        .bind(artist_id)
        .fetch_all(&self.reads)
        .await?;
        let mut clubs = rows
            .iter()
            .map(club_of_row)
            .collect::<Result<Vec<_>, _>>()?;
        clubs.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.name.cmp(&b.name)));
        Ok(clubs)
    }

    /// The clubs `user` is a member of now, one per artist.
    pub async fn clubs_of(&self, user: &str) -> Result<Vec<Club>, LedgerError> {
        let rows = sqlx::query(
            "SELECT c.id AS id, c.artist_id AS artist_id, c.name AS name, \
             (SELECT COUNT(*) FROM club_members o WHERE o.club_id = c.id \
              AND o.left_at IS NULL) AS members \
             FROM club_members m JOIN clubs c ON c.id = m.club_id \
             WHERE m.user_id = $1 AND m.left_at IS NULL",
        )
        .bind(user)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .iter()
            .map(club_of_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Net copies per club and album bought by members of `artist_id`'s clubs while members,
    /// dated at or after `since` (None: all time). Which albums are the artist's is the
    /// catalog's to say: the caller keeps those.
    pub async fn club_sales(
        &self,
        artist_id: &str,
        since: Option<i64>,
    ) -> Result<Vec<ClubSales>, LedgerError> {
        let rows = sqlx::query(
            "SELECT m.club_id AS club_id, p.album AS album, \
             CAST(SUM(p.quantity) AS BIGINT) AS units \
             FROM club_members m JOIN purchases p ON p.user_id = m.user_id \
             WHERE m.artist_id = $1 AND p.refunded_at IS NULL AND p.purchased_at >= $2 \
             AND p.purchased_at >= m.joined_at \
             AND (m.left_at IS NULL OR p.purchased_at < m.left_at) \
             GROUP BY m.club_id, p.album",
        )
        .bind(artist_id)
        .bind(since.unwrap_or(i64::MIN))
        .fetch_all(&self.reads)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(ClubSales {
                    club_id: row.try_get("club_id")?,
                    album: row.try_get("album")?,
                    units: row.try_get("units")?,
                })
            })
            .collect()
    }
}

fn club_of_row(row: &sqlx::any::AnyRow) -> Result<Club, sqlx::Error> {
    Ok(Club {
        id: row.try_get("id")?,
        artist_id: row.try_get("artist_id")?,
        name: row.try_get("name")?,
        members: row.try_get("members")?,
    })
}

/// A new club id: 64 random bits, so ids say nothing about when or by whom.
fn new_club_id() -> Result<String, LedgerError> {
    let mut raw = [0u8; 8];
    crate::seal::key::fill_random(&mut raw)
        .map_err(|e| LedgerError::Corrupt(format!("no randomness for a club id: {e}")))?;
    Ok(format!("club-{}", hex::encode(raw)))
}

async fn club_write_on(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    op: &ClubOp<'_>,
    now: i64,
) -> Result<Membership, LedgerError> {
    let mut tx = conn.begin_with(backend.begin_write()).await?;
    backend.take_write_turn(&mut tx).await?;
    let (club_id, user, join) = match op {
        ClubOp::Create {
            artist_id,
            name,
            user,
        } => {
            let key = name.to_lowercase();
            let taken = sqlx::query("SELECT id FROM clubs WHERE artist_id = $1 AND name_key = $2")
                .bind(*artist_id)
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Err(LedgerError::ClubNameTaken((*name).to_owned()));
            }
            let id = new_club_id()?;
            sqlx::query(
                "INSERT INTO clubs (id, artist_id, name, name_key, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(*artist_id)
            .bind(*name)
            .bind(&key)
            .bind(*user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            (id, *user, true)
        }
        ClubOp::Join { club_id, user } => ((*club_id).to_owned(), *user, true),
        ClubOp::Leave { club_id, user } => ((*club_id).to_owned(), *user, false),
    };
    let artist_id: String = sqlx::query("SELECT artist_id FROM clubs WHERE id = $1")
        .bind(&club_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| LedgerError::UnknownClub(club_id.clone()))?
        .try_get("artist_id")?;
    let open: Option<String> = sqlx::query(
        "SELECT club_id FROM club_members \
         WHERE user_id = $1 AND artist_id = $2 AND left_at IS NULL",
    )
    .bind(user)
    .bind(&artist_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("club_id"))
    .transpose()?;
    let already = open.as_deref() == Some(club_id.as_str());
    if join != already {
        // Joining closes the membership of any other club of the artist; leaving closes this.
        sqlx::query(
            "UPDATE club_members SET left_at = $1 \
             WHERE user_id = $2 AND artist_id = $3 AND left_at IS NULL",
        )
        .bind(now)
        .bind(user)
        .bind(&artist_id)
        .execute(&mut *tx)
        .await?;
        if join {
            sqlx::query(
                "INSERT INTO club_members (club_id, artist_id, user_id, joined_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&club_id)
            .bind(&artist_id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    let club = sqlx::query(
        "SELECT c.id AS id, c.artist_id AS artist_id, c.name AS name, \
         (SELECT COUNT(*) FROM club_members m WHERE m.club_id = c.id \
          AND m.left_at IS NULL) AS members FROM clubs c WHERE c.id = $1",
    )
    .bind(&club_id)
    .fetch_one(&mut *tx)
    .await?;
    let club = club_of_row(&club)?;
    tx.commit().await?;
    Ok(Membership {
        club,
        user: user.to_owned(),
        member: join,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn club_names() {
        assert_eq!(
            club_name("  Lantern Lights ").as_deref(),
            Ok("Lantern Lights")
        );
        assert_eq!(
            club_name("O'Brien_fans-2.0").as_deref(),
            Ok("O'Brien_fans-2.0")
        );
        // NFC: "e" + combining acute is stored as "é".
        assert_eq!(club_name("Caf\u{65}\u{301}").as_deref(), Ok("Caf\u{e9}"));
        assert_eq!(club_name("灯笼合唱团").as_deref(), Ok("灯笼合唱团"));
        for bad in ["", "   ", "a<b>", "x/y", "emoji 🎵", &"x".repeat(41)] {
            assert!(club_name(bad).is_err(), "{bad:?}");
        }
        assert!(club_name(&"x".repeat(40)).is_ok());
    }
}
