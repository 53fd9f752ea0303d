//! # pallet-bsmr-membership
//!
//! The bsmr validator set: each member is an account with an sr25519 `bsmr` consensus key.
//!
//! Changes (add, remove, rotate a key) are requested by the root origin (sudo on dev and local
//! chains) and **queued**: they are enacted together in the first block whose number is a multiple
//! of [`Config::EpochLength`], never in the middle of an epoch. Enacting a non-empty queue starts a
//! new epoch: the epoch index counts validator-set changes, so the consensus engine switches its
//! instance logs only when the set really changes (see `docs/membership.md`).
//!
//! Rules, each with its own error:
//! - a member appears once and a key is held by one member (current or pending): [`Error::AlreadyMember`],
//!   [`Error::DuplicateKey`];
//! - at most one pending change per member: [`Error::ChangeAlreadyPending`];
//! - the set never shrinks below [`MinMembers`] nor grows above [`Config::MaxMembers`]:
//!   [`Error::TooFewMembers`], [`Error::TooManyMembers`].
//!
//! The set's fault tolerance `f = floor((n-1)/3)` and quorum `q = ceil((n+f+1)/2)` are exposed by
//! [`Pallet::fault_tolerance`] and [`Pallet::quorum`]; the runtime API `BsmrApi` reads
//! [`Pallet::validator_set`] and [`Pallet::next_validator_set`].
//!
//! Misbehaviour (protocol.md, "Misbehaviour") is reported on chain with the unsigned call
//! [`Pallet::report_misbehaviour`]: a self-contained proof of the consensus core
//! ([`bsmr_consensus_core::Proof`]) against a member of the current epoch, checked here with the
//! same code that produced it, and recorded once per offender and epoch in [`Offences`]. The
//! engine of every validator that catches a member misbehaving submits one; the first to land
//! counts, later ones are rejected as already reported.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;

/// The fewest bytes a signed statement takes in an encoded proof: its signer and signature.
pub const SIGNED_ITEM_MIN_LEN: u32 = 32 + 64;

/// The most prepared certificates the `report_misbehaviour` benchmark puts in one proof: with
/// 128 members (q = 86) its proof stays below the core's bound on proofs.
pub const MAX_BENCHMARKED_CERTS: u32 = 16;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
pub mod weights;

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;

/// What a reported misbehaviour proof showed (the kinds of [`bsmr_consensus_core::Proof`]).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    Encode,
    Decode,
    DecodeWithMemTracking,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum MisbehaviourKind {
    /// Two batch headers for one slot.
    BatchEquivocation,
    /// Two dependency replies to one command.
    ReplyEquivocation,
    /// Two consensus votes for one instance, view and phase.
    VoteEquivocation,
    /// Two pre-prepares for one instance and view.
    PrePrepareEquivocation,
    /// A signed proposal that fails its self-contained validity check.
    InvalidProposal,
    /// Two finality votes for one height.
    FinalityEquivocation,
}

impl From<&bsmr_consensus_core::Proof> for MisbehaviourKind {
    fn from(p: &bsmr_consensus_core::Proof) -> Self {
        use bsmr_consensus_core::Proof::*;
        match p {
            BatchEquivocation(..) => Self::BatchEquivocation,
            ReplyEquivocation(..) => Self::ReplyEquivocation,
            VoteEquivocation(..) => Self::VoteEquivocation,
            PrePrepareEquivocation(..) => Self::PrePrepareEquivocation,
            InvalidProposal(..) => Self::InvalidProposal,
            FinalityEquivocation(..) => Self::FinalityEquivocation,
        }
    }
}

/// Checks sr25519 signatures of consensus messages inside the runtime.
struct RuntimeVerifier;

impl bsmr_consensus_core::Verifier for RuntimeVerifier {
    fn verify(
        &self,
        who: &bsmr_consensus_core::ValidatorId,
        digest: &bsmr_consensus_core::Digest,
        sig: &bsmr_consensus_core::Signature,
    ) -> bool {
        sp_io::crypto::sr25519_verify(
            &sp_core::sr25519::Signature::from_raw(*sig),
            digest,
            &sp_core::sr25519::Public::from_raw(*who),
        )
    }
}

/// A change to one member, queued until the next epoch boundary.
#[derive(
    Clone, PartialEq, Eq, Debug, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen,
)]
pub enum MemberChange<Key> {
    /// Add the account as a member with this consensus key.
    Add(Key),
    /// Remove the member.
    Remove,
    /// Replace the member's consensus key with this one.
    RotateKey(Key),
}

#[frame_support::pallet]
pub mod pallet {
    use super::{MemberChange, MisbehaviourKind, RuntimeVerifier, WeightInfo, SIGNED_ITEM_MIN_LEN};
    use alloc::vec::Vec;
    use bsmr_consensus_core::{
        misbehaviour::{ReportedProof, MAX_PROOF_LEN},
        validity::DEFAULT_WINDOW,
    };
    use bsmr_primitives::{AuthorityId, EpochIndex, ValidatorSet};
    use frame_support::pallet_prelude::*;
    use frame_system::pallet_prelude::*;
    use sp_runtime::traits::Zero;

    /// An encoded [`bsmr_consensus_core::Proof`], bounded by the core's limit for untrusted proofs.
    pub type ProofBytes = BoundedVec<u8, ConstU32<{ MAX_PROOF_LEN as u32 }>>;

    /// A member: its account and its consensus key.
    pub type MemberOf<T> = (<T as frame_system::Config>::AccountId, AuthorityId);

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    #[pallet::config]
    pub trait Config: frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// Blocks per epoch: queued changes are enacted only in blocks whose number is a multiple
        /// of this. Must be non-zero.
        #[pallet::constant]
        type EpochLength: Get<BlockNumberFor<Self>>;

        /// The largest validator set (bounds storage and the engine's per-epoch state).
        #[pallet::constant]
        type MaxMembers: Get<u32>;

        /// Weights of this pallet's calls.
        type WeightInfo: WeightInfo;
    }

    /// The validator set in force, sorted by account. Its order is the canonical validator order
    /// of the consensus engine.
    #[pallet::storage]
    pub type Members<T: Config> =
        StorageValue<_, BoundedVec<MemberOf<T>, T::MaxMembers>, ValueQuery>;

    /// Changes waiting for the next epoch boundary, at most one per account.
    #[pallet::storage]
    pub type PendingChanges<T: Config> = StorageValue<
        _,
        BoundedBTreeMap<T::AccountId, MemberChange<AuthorityId>, T::MaxMembers>,
        ValueQuery,
    >;

    /// Index of the current epoch; it increases by one each time queued changes are enacted.
    #[pallet::storage]
    pub type CurrentEpoch<T: Config> = StorageValue<_, EpochIndex, ValueQuery>;

    /// Misbehaviour reported on chain: per epoch, each convicted member with the kind of its
    /// first proof. A member is recorded once per epoch.
    #[pallet::storage]
    pub type Offences<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        EpochIndex,
        Blake2_128Concat,
        AuthorityId,
        MisbehaviourKind,
        OptionQuery,
    >;

    /// The smallest size the set may shrink to (4 on local networks, 1 on a dev chain).
    #[pallet::storage]
    pub type MinMembers<T: Config> = StorageValue<_, u32, ValueQuery>;

    #[pallet::genesis_config]
    #[derive(frame_support::DefaultNoBound)]
    pub struct GenesisConfig<T: Config> {
        /// The initial members (account, consensus key).
        pub members: Vec<MemberOf<T>>,
        /// The smallest size the set may shrink to; at least 1.
        pub min_members: u32,
    }

    #[pallet::genesis_build]
    impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
        fn build(&self) {
            assert!(
                !T::EpochLength::get().is_zero(),
                "EpochLength must be non-zero"
            );
            if self.members.is_empty() && self.min_members == 0 {
                // The default (empty) genesis, as frame's generated genesis test builds it: no
                // validator set. Every chain spec of this project sets members and a minimum.
                return;
            }
            assert!(self.min_members >= 1, "min_members must be at least 1");
            assert!(
                self.members.len() as u32 >= self.min_members,
                "genesis has {} members, fewer than min_members = {}",
                self.members.len(),
                self.min_members
            );
            let mut members = self.members.clone();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            for pair in members.windows(2) {
                assert!(pair[0].0 != pair[1].0, "duplicate member in genesis");
            }
            let mut keys: Vec<_> = members.iter().map(|(_, k)| k.clone()).collect();
            keys.sort();
            keys.dedup();
            assert!(keys.len() == members.len(), "duplicate key in genesis");
            let members: BoundedVec<_, T::MaxMembers> = members
                .try_into()
                .expect("genesis has more members than MaxMembers");
            Members::<T>::put(members);
            MinMembers::<T>::put(self.min_members);
        }
    }

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// The account will join the set at the next epoch boundary.
        MemberAdditionScheduled { who: T::AccountId, key: AuthorityId },
        /// The member will leave the set at the next epoch boundary.
        MemberRemovalScheduled { who: T::AccountId },
        /// The member's key will be replaced at the next epoch boundary.
        KeyRotationScheduled { who: T::AccountId, key: AuthorityId },
        /// Queued changes were enacted: a new epoch with `members` validators starts.
        NewEpoch { epoch: EpochIndex, members: u32 },
        /// The minimum set size changed.
        MinMembersSet { min_members: u32 },
        /// A proof convicted the member holding `offender` of misbehaviour in `epoch`.
        MisbehaviourReported {
            epoch: EpochIndex,
            offender: AuthorityId,
            kind: MisbehaviourKind,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The account is already a member (or is scheduled to become one).
        AlreadyMember,
        /// The account is not a member.
        NotMember,
        /// The key is already held by a member or named by a pending change.
        DuplicateKey,
        /// The account already has a change waiting for the next epoch boundary.
        ChangeAlreadyPending,
        /// The change would shrink the set below the minimum size.
        TooFewMembers,
        /// The change would grow the set above `MaxMembers`.
        TooManyMembers,
        /// The minimum must be at least 1 and at most the size the set will have.
        InvalidMinimum,
        /// The proof does not decode or convicts no member of the current set.
        InvalidProof,
        /// The proof is about another epoch than the current one.
        StaleProof,
        /// The offender is already recorded for this epoch.
        AlreadyReported,
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_initialize(n: BlockNumberFor<T>) -> Weight {
            let epoch_length = T::EpochLength::get();
            if epoch_length.is_zero() || !(n % epoch_length).is_zero() {
                return T::DbWeight::get().reads(0);
            }
            let pending = PendingChanges::<T>::get().len() as u32;
            if pending == 0 {
                return T::DbWeight::get().reads(1);
            }
            Self::enact_pending_changes();
            T::WeightInfo::enact_changes(pending)
        }

        #[cfg(feature = "try-runtime")]
        fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
            Self::do_try_state()
        }
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Schedule `who` to join the set with consensus key `key` at the next epoch boundary.
        #[pallet::call_index(0)]
        #[pallet::weight(T::WeightInfo::add_member())]
        pub fn add_member(
            origin: OriginFor<T>,
            who: T::AccountId,
            key: AuthorityId,
        ) -> DispatchResult {
            ensure_root(origin)?;
            ensure!(!Self::is_member(&who), Error::<T>::AlreadyMember);
            let mut pending = PendingChanges::<T>::get();
            if let Some(change) = pending.get(&who) {
                return Err(match change {
                    MemberChange::Add(_) => Error::<T>::AlreadyMember,
                    _ => Error::<T>::ChangeAlreadyPending,
                }
                .into());
            }
            ensure!(!Self::key_in_use(&key, &pending), Error::<T>::DuplicateKey);
            ensure!(
                Self::size_after(&pending) < T::MaxMembers::get(),
                Error::<T>::TooManyMembers
            );
            pending
                .try_insert(who.clone(), MemberChange::Add(key.clone()))
                .map_err(|_| Error::<T>::TooManyMembers)?;
            PendingChanges::<T>::put(pending);
            Self::deposit_event(Event::MemberAdditionScheduled { who, key });
            Ok(())
        }

        /// Schedule the member `who` to leave the set at the next epoch boundary.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::remove_member())]
        pub fn remove_member(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
            ensure_root(origin)?;
            ensure!(Self::is_member(&who), Error::<T>::NotMember);
            let mut pending = PendingChanges::<T>::get();
            ensure!(
                !pending.contains_key(&who),
                Error::<T>::ChangeAlreadyPending
            );
            ensure!(
                Self::size_after(&pending) > MinMembers::<T>::get(),
                Error::<T>::TooFewMembers
            );
            pending
                .try_insert(who.clone(), MemberChange::Remove)
                .map_err(|_| Error::<T>::TooManyMembers)?;
            PendingChanges::<T>::put(pending);
            Self::deposit_event(Event::MemberRemovalScheduled { who });
            Ok(())
        }

        /// Schedule the member `who`'s consensus key to become `key` at the next epoch boundary.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::rotate_key())]
        pub fn rotate_key(
            origin: OriginFor<T>,
            who: T::AccountId,
            key: AuthorityId,
        ) -> DispatchResult {
            ensure_root(origin)?;
            ensure!(Self::is_member(&who), Error::<T>::NotMember);
            let mut pending = PendingChanges::<T>::get();
            ensure!(
                !pending.contains_key(&who),
                Error::<T>::ChangeAlreadyPending
            );
            ensure!(!Self::key_in_use(&key, &pending), Error::<T>::DuplicateKey);
            pending
                .try_insert(who.clone(), MemberChange::RotateKey(key.clone()))
                .map_err(|_| Error::<T>::TooManyMembers)?;
            PendingChanges::<T>::put(pending);
            Self::deposit_event(Event::KeyRotationScheduled { who, key });
            Ok(())
        }

        /// Set the smallest size the set may shrink to. Takes effect at once; it must be at least 1
        /// and no larger than the size the set will have after the pending changes.
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::set_min_members())]
        pub fn set_min_members(origin: OriginFor<T>, min_members: u32) -> DispatchResult {
            ensure_root(origin)?;
            let pending = PendingChanges::<T>::get();
            ensure!(
                min_members >= 1 && min_members <= Self::size_after(&pending),
                Error::<T>::InvalidMinimum
            );
            MinMembers::<T>::put(min_members);
            Self::deposit_event(Event::MinMembersSet { min_members });
            Ok(())
        }

        /// Report a member's misbehaviour with a self-contained proof (an encoded
        /// [`bsmr_consensus_core::Proof`] of the current epoch). Unsigned: the proof is its own
        /// authorization, and it is checked again here when the block executes.
        #[pallet::call_index(4)]
        #[pallet::weight(Pallet::<T>::report_weight(proof.len() as u32))]
        pub fn report_misbehaviour(origin: OriginFor<T>, proof: ProofBytes) -> DispatchResult {
            ensure_none(origin)?;
            let (epoch, offender, kind) = Self::convict(&proof)?;
            Offences::<T>::insert(epoch, &offender, kind);
            Self::deposit_event(Event::MisbehaviourReported {
                epoch,
                offender,
                kind,
            });
            Ok(())
        }
    }

    // `ValidateUnsigned` is deprecated in favour of `#[pallet::authorize]`, which needs
    // `frame_system::AuthorizeCall` in the runtime's transaction extensions (a change of the
    // extrinsic format every client signs). It stays supported until April 2027; the migration
    // is noted in docs/membership.md.
    #[allow(deprecated)]
    #[pallet::validate_unsigned]
    impl<T: Config> ValidateUnsigned for Pallet<T> {
        type Call = Call<T>;

        fn validate_unsigned(_source: TransactionSource, call: &Self::Call) -> TransactionValidity {
            let Call::report_misbehaviour { proof } = call else {
                return InvalidTransaction::Call.into();
            };
            let (epoch, offender, _) = Self::convict(proof).map_err(|e| match e {
                Error::<T>::AlreadyReported | Error::<T>::StaleProof => InvalidTransaction::Stale,
                _ => InvalidTransaction::BadProof,
            })?;
            ValidTransaction::with_tag_prefix("BsmrMisbehaviour")
                .priority(TransactionPriority::MAX / 2)
                .and_provides((epoch, offender))
                .longevity(64)
                .propagate(true)
                .build()
        }
    }

    /// Whether no two members hold one key.
    #[cfg(any(feature = "try-runtime", test))]
    fn distinct_keys<T: Config>(members: &[MemberOf<T>]) -> bool {
        let mut keys: Vec<&AuthorityId> = members.iter().map(|(_, k)| k).collect();
        keys.sort();
        keys.windows(2).all(|w| w[0] != w[1])
    }

    impl<T: Config> Pallet<T> {
        /// Check an encoded proof against the current set: the epoch, the offender and the kind
        /// of misbehaviour, if it convicts a member not yet recorded for this epoch.
        pub fn convict(
            proof: &[u8],
        ) -> Result<(EpochIndex, AuthorityId, MisbehaviourKind), Error<T>> {
            // Read without expanding a pre-prepare: its reply proof may decode into about 80
            // times its size, which only a member's signature earns (`ReportedProof`).
            let reported = ReportedProof::read(proof).map_err(|_| Error::<T>::InvalidProof)?;
            let epoch = CurrentEpoch::<T>::get();
            ensure!(reported.epoch() == epoch, Error::<T>::StaleProof);
            // Cheap checks before any signature: a duplicate report (an equivocator can vary its
            // proofs without limit) costs one storage read.
            let accused = AuthorityId::from(sp_core::sr25519::Public::from_raw(reported.accused()));
            ensure!(
                !Offences::<T>::contains_key(epoch, &accused),
                Error::<T>::AlreadyReported
            );
            let keys: Vec<[u8; 32]> = Self::validator_keys()
                .into_iter()
                .map(|k| sp_core::sr25519::Public::from(k).0)
                .collect();
            ensure!(!keys.is_empty(), Error::<T>::InvalidProof);
            let genesis = frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero());
            let genesis: [u8; 32] = genesis
                .as_ref()
                .try_into()
                .map_err(|_| Error::<T>::InvalidProof)?;
            let set = bsmr_consensus_core::Membership::new(genesis, epoch, keys);
            let proof = reported
                .expand(&set, &RuntimeVerifier)
                .map_err(|_| Error::<T>::InvalidProof)?;
            let offender = proof
                .check(&set, &RuntimeVerifier, DEFAULT_WINDOW)
                .ok_or(Error::<T>::InvalidProof)?;
            // `check` convicts the accused or nobody; the record is keyed by the accused.
            ensure!(offender == reported.accused(), Error::<T>::InvalidProof);
            Ok((epoch, accused, MisbehaviourKind::from(&proof)))
        }

        /// Weight of `report_misbehaviour` with a proof of `len` bytes. Signature checks dominate
        /// and every signature the runtime verifies takes at least 96 bytes of the proof (signer
        /// and signature), so `len / 96` bounds them; the benchmark's `c` prepared certificates
        /// of q votes against the largest set verify `q * c` of them, so `c = len / (96 q)`
        /// covers the proof. A block checks the proof twice (`pre_dispatch` runs the unsigned
        /// validation, then the call), hence the factor 2.
        pub fn report_weight(len: u32) -> Weight {
            let q = bsmr_primitives::quorum_size(T::MaxMembers::get()).max(1);
            let certs = len.div_ceil(SIGNED_ITEM_MIN_LEN.saturating_mul(q));
            T::WeightInfo::report_misbehaviour(certs).saturating_mul(2)
        }

        /// Whether `who` is a member of the set in force.
        pub fn is_member(who: &T::AccountId) -> bool {
            Members::<T>::get()
                .binary_search_by(|(account, _)| account.cmp(who))
                .is_ok()
        }

        /// The members' consensus keys in canonical (account) order.
        pub fn validator_keys() -> Vec<AuthorityId> {
            Members::<T>::get()
                .into_iter()
                .map(|(_, key)| key)
                .collect()
        }

        /// The set in force with its epoch index.
        pub fn validator_set() -> ValidatorSet {
            ValidatorSet {
                epoch: CurrentEpoch::<T>::get(),
                validators: Self::validator_keys(),
            }
        }

        /// The set the next epoch will have, if any change is pending.
        pub fn next_validator_set() -> Option<ValidatorSet> {
            let pending = PendingChanges::<T>::get();
            if pending.is_empty() {
                return None;
            }
            let members = Self::apply(Members::<T>::get().into_inner(), &pending);
            Some(ValidatorSet {
                epoch: CurrentEpoch::<T>::get().saturating_add(1),
                validators: members.into_iter().map(|(_, key)| key).collect(),
            })
        }

        /// `f`: how many Byzantine validators the set in force tolerates.
        pub fn fault_tolerance() -> u32 {
            bsmr_primitives::fault_tolerance(Members::<T>::decode_len().unwrap_or(0) as u32)
        }

        /// `q`: the quorum size of the set in force.
        pub fn quorum() -> u32 {
            bsmr_primitives::quorum_size(Members::<T>::decode_len().unwrap_or(0) as u32)
        }

        /// Enact every pending change and start a new epoch.
        fn enact_pending_changes() {
            let pending = PendingChanges::<T>::take();
            let members = Self::apply(Members::<T>::get().into_inner(), &pending);
            let count = members.len() as u32;
            // The calls keep the size within [MinMembers, MaxMembers], so this cannot truncate.
            let bounded = BoundedVec::truncate_from(members);
            Members::<T>::put(bounded);
            let epoch = CurrentEpoch::<T>::mutate(|e| {
                *e = e.saturating_add(1);
                *e
            });
            Self::deposit_event(Event::NewEpoch {
                epoch,
                members: count,
            });
        }

        /// The member list that results from applying `pending`, sorted by account.
        fn apply(
            mut members: Vec<MemberOf<T>>,
            pending: &BoundedBTreeMap<T::AccountId, MemberChange<AuthorityId>, T::MaxMembers>,
        ) -> Vec<MemberOf<T>> {
            for (who, change) in pending.iter() {
                let at = members.binary_search_by(|(account, _)| account.cmp(who));
                match (change, at) {
                    (MemberChange::Add(key), Err(i)) => {
                        members.insert(i, (who.clone(), key.clone()))
                    }
                    (MemberChange::Remove, Ok(i)) => {
                        members.remove(i);
                    }
                    (MemberChange::RotateKey(key), Ok(i)) => members[i].1 = key.clone(),
                    // The calls make these unreachable; ignoring them keeps the set well formed.
                    _ => {}
                }
            }
            members
        }

        /// The invariants the calls and the epoch hook keep (run by try-runtime after every block
        /// and by the unit tests): members sorted by account without duplicates, keys distinct,
        /// the set within [`MinMembers`] (at least 1) and [`Config::MaxMembers`], and the pending
        /// changes applicable: each names a member (remove, rotate) or a non-member (add), and
        /// enacting them keeps the size in bounds and the keys distinct.
        #[cfg(any(feature = "try-runtime", test))]
        pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
            let members = Members::<T>::get().into_inner();
            let min = MinMembers::<T>::get();
            ensure!(min >= 1, "MinMembers is 0");
            ensure!(
                members.windows(2).all(|w| w[0].0 < w[1].0),
                "Members is not sorted by account or holds an account twice"
            );
            ensure!(
                distinct_keys::<T>(&members),
                "two members hold one consensus key"
            );
            ensure!(
                members.len() as u32 >= min,
                "the set is smaller than MinMembers"
            );
            let pending = PendingChanges::<T>::get();
            for (who, change) in pending.iter() {
                let member = members.binary_search_by(|(a, _)| a.cmp(who)).is_ok();
                let applicable = match change {
                    MemberChange::Add(_) => !member,
                    MemberChange::Remove | MemberChange::RotateKey(_) => member,
                };
                ensure!(applicable, "a pending change does not apply to the set");
            }
            let size = Self::size_after(&pending);
            ensure!(
                size >= min && size <= T::MaxMembers::get(),
                "enacting the pending changes leaves the size out of bounds"
            );
            ensure!(
                distinct_keys::<T>(&Self::apply(members, &pending)),
                "enacting the pending changes gives two members one key"
            );
            Ok(())
        }

        /// The set size after the pending changes.
        fn size_after(
            pending: &BoundedBTreeMap<T::AccountId, MemberChange<AuthorityId>, T::MaxMembers>,
        ) -> u32 {
            let current = Members::<T>::decode_len().unwrap_or(0) as u32;
            pending.values().fold(current, |size, change| match change {
                MemberChange::Add(_) => size.saturating_add(1),
                MemberChange::Remove => size.saturating_sub(1),
                MemberChange::RotateKey(_) => size,
            })
        }

        /// Whether `key` is held by a member or named by a pending change.
        fn key_in_use(
            key: &AuthorityId,
            pending: &BoundedBTreeMap<T::AccountId, MemberChange<AuthorityId>, T::MaxMembers>,
        ) -> bool {
            Members::<T>::get().iter().any(|(_, k)| k == key)
                || pending.values().any(|change| match change {
                    MemberChange::Add(k) | MemberChange::RotateKey(k) => k == key,
                    MemberChange::Remove => false,
                })
        }
    }
}
