//! Signed controller commands (pause, resume, revert, status) and TrustRoot rotation.

use super::*;

impl<F: NorFlash> Agent<F> {
    #[inline(never)]
    pub(super) fn command(&mut self, now: u64, bytes: &[u8]) -> Result<Outputs, Error> {
        let signed: Signed<'_> = decode_signed(bytes, MAX_COMMAND)?;
        let release_keys = self.trust_root()?.release_keys;
        let body = signed.verify_by(Domain::Command, &release_keys)?;
        let cmd: Command<'_> = decode(body)?;
        let identity = self.identity.as_ref().ok_or(Refusal::Decommissioned)?;
        if cmd.device != identity.device_id.as_str() {
            return Err(Refusal::WrongDevice.into());
        }
        if now >= cmd.expires_at {
            return Err(Refusal::Expired.into());
        }
        if cmd.sequence <= self.state.last_command {
            return Err(Refusal::Replay.into());
        }
        let mut out = Outputs::new();
        match cmd.action {
            CommandAction::Pause => self.paused = true,
            CommandAction::Resume => {
                self.paused = false;
                if let Some(d) = self.download.as_mut() {
                    let from = d.writer.position();
                    let window = u32::from(self.settings.window.max(1)) * d.chunk;
                    d.last_activity = now;
                    push(&mut out, Output::RequestChunks(request(d, from, window)));
                }
            }
            CommandAction::Status => push(&mut out, Output::Report(Event::Status(self.status()))),
            CommandAction::Revert => {
                if self.running.is_some_and(|r| r.testing) {
                    self.revert_trial_image(RevertReason::Command, &mut out)?;
                } else {
                    self.revert_confirmed_image(&mut out)?;
                }
            }
            CommandAction::RevertConfig => {
                if self.state.config_trial.is_some() {
                    self.revert_trial_config(RevertReason::Command, &mut out)?;
                } else {
                    self.revert_confirmed_config(&mut out)?;
                }
            }
        }
        self.state.last_command = cmd.sequence;
        self.persist()?;
        Ok(out)
    }

    /// Back to the image in the other slot, if it is an approved image the device may still run.
    fn revert_confirmed_image(&mut self, out: &mut Outputs) -> Result<(), Error> {
        let other = 1 - self.state.active;
        let Some(image) = self.state.slots[usize::from(other)] else {
            return Err(Refusal::NothingToRevert.into());
        };
        if self.download.is_some() {
            return Err(Refusal::Busy.into());
        }
        if image.security_counter < self.state.min_security_counter {
            return Err(Refusal::SecurityCounterDowngrade.into());
        }
        // The image reverted from is dropped: it never boots again, not even as a fallback.
        let manifest = self.drop_slot(self.state.active);
        self.state.active = other;
        push(out, Output::Report(Event::Reverted { manifest, reason: RevertReason::Command }));
        push(out, Output::Reboot { slot: other });
        Ok(())
    }

    fn revert_confirmed_config(&mut self, out: &mut Outputs) -> Result<(), Error> {
        let Some(previous) = self.state.config_previous else {
            return Err(Refusal::NothingToRevert.into());
        };
        let manifest = self.state.config_active.and_then(|s| self.state.configs[usize::from(s)]).map(|c| c.manifest);
        if let Some(active) = self.state.config_active {
            self.state.configs[usize::from(active)] = None;
        }
        self.state.config_active = Some(previous);
        self.state.config_previous = None;
        push(out, Output::Report(Event::ConfigReverted { manifest, reason: RevertReason::Command }));
        push(out, Output::ApplyConfig { slot: previous, testing: false });
        Ok(())
    }

    #[inline(never)]
    pub(super) fn rotate(&mut self, now: u64, bytes: &[u8]) -> Result<Outputs, Error> {
        let signed: SignedTrustRoot<'_> = decode(bytes)?;
        let current = self.trust_root()?;
        let next = signed.verify_rotation(&current, now)?;
        self.trust_records.store(&mut self.flash, bytes)?;
        self.trust_version = next.version;
        let mut out = Outputs::new();
        push(&mut out, Output::Report(Event::Status(self.status())));
        Ok(out)
    }
}
