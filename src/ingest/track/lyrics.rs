//! A track's lyrics at ingest: the `.lrc` beside the source (same stem) wins over an ID3
//! `SYLT` frame, which wins over a lyrics tag. Read on every run, packaged or not (a few kilobytes of text), so an edited `.lrc`
//! reaches players without sending the audio back through the encoders; written only when
//! they changed.

use std::path::{Path, PathBuf};

use super::{TrackError, TrackJob};
use crate::ingest::Failure;
use crate::media::lyrics::{self, Lyrics, LyricsSource};
use crate::store::TrackRecord;

/// The `.lrc` file beside `source` (`x.flac` → `x.lrc` or `x.LRC`), if there is one.
fn lrc_beside(source: &Path) -> Option<PathBuf> {
    ["lrc", "LRC"]
        .iter()
        .map(|ext| source.with_extension(ext))
        .find(|p| p.is_file())
}

/// Settles the track's lyrics in the store and in `record`. `tags` is the lyrics tag of the
/// source when this run decoded it (`None`: unchanged track, the stored tag lyrics stand).
/// Returns a failure naming a bad `.lrc` (the track itself is still packaged) and whether
/// `record` changed.
pub(super) fn settle(
    job: &TrackJob<'_>,
    record: &mut TrackRecord,
    tags: Option<Option<&str>>,
) -> Result<(Option<Failure>, bool), TrackError> {
    let store_err = |e: crate::store::StoreError| TrackError::Store {
        path: job.path.clone(),
        reason: e.to_string(),
    };
    let stored = job
        .store
        .read_lyrics(job.album, job.track)
        .map_err(store_err)?;
    let mut failure = None;
    let from_lrc = match lrc_beside(&job.path) {
        Some(file) => match std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| lyrics::parse_lrc(&bytes).map_err(|e| e.to_string()))
        {
            Ok(l) => Some(l),
            Err(reason) => {
                failure = Some(Failure {
                    path: file,
                    reason: format!("lyrics not packaged (the track is): {reason}"),
                });
                None
            }
        },
        None => None,
    };
    let chosen: Option<Lyrics> = match (from_lrc, tags) {
        (Some(l), _) => Some(l),
        // A synced ID3 `SYLT` frame wins over the unsynced lyrics tag.
        (None, Some(tag)) => {
            lyrics::from_id3_sylt(&job.path).or_else(|| tag.and_then(lyrics::from_tag))
        }
        // Unchanged audio: lyrics that came from its tags are still right; lyrics from an
        // .lrc that is now gone (or bad) are not.
        (None, None) => stored.clone().filter(|l| l.source == LyricsSource::Tags),
    };
    if chosen != stored {
        match &chosen {
            Some(l) => job.store.write_lyrics(job.album, job.track, l),
            None => job.store.remove_lyrics(job.album, job.track),
        }
        .map_err(store_err)?;
    }
    let summary = chosen.as_ref().map(Lyrics::summary);
    let changed = record.lyrics != summary;
    record.lyrics = summary;
    Ok((failure, changed))
}
