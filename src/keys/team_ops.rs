//! The admin operations on teams (`switchyard teams`, `/admin/teams`) and the running gateway's
//! view of them. A change is written, re-read at once here and announced to the other replicas,
//! exactly as a key's is.

use super::team::{Team, TeamChange};
use super::{Keys, OpError, now_ms};
use std::sync::Arc;

impl Keys {
    /// The team named `name` with a budget, as last read.
    pub fn team(&self, name: &str) -> Option<Arc<Team>> {
        self.cache.load().teams.get(name).cloned()
    }

    /// Every team as last read, for gauges.
    pub fn cached_teams(&self) -> Vec<Arc<Team>> {
        self.cache.load().teams.values().cloned().collect()
    }

    pub async fn list_teams(&self) -> Result<Vec<Team>, OpError> {
        self.ready().await?;
        Ok(self.teams.all().await?)
    }

    pub async fn show_team(&self, name: &str) -> Result<Team, OpError> {
        self.list_teams()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| OpError::NoTeam(name.to_string()))
    }

    /// Creates the team or changes it; returns it and whether it is new.
    pub async fn set_team(&self, name: &str, change: &TeamChange) -> Result<(Team, bool), OpError> {
        let was = match self.show_team(name).await {
            Ok(t) => Some(t),
            Err(OpError::NoTeam(_)) => None,
            Err(e) => return Err(e),
        };
        let created = was.is_none();
        let t = change
            .apply(name, was, now_ms())
            .map_err(OpError::Invalid)?;
        self.teams.put(&t).await?;
        self.reload().await;
        self.announce().await;
        Ok((t, created))
    }

    /// Removes the team's budget for good; its keys keep their team name and their own budgets.
    pub async fn remove_team(&self, name: &str) -> Result<Team, OpError> {
        let t = self.show_team(name).await?;
        if !self.teams.remove(name).await? {
            return Err(OpError::NoTeam(name.to_string()));
        }
        self.reload().await;
        self.announce().await;
        Ok(t)
    }
}
