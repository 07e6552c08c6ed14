//! MAIN THREAD: checking a saved state before any of it reaches a parameter.
//!
//! nice-plug writes loaded values straight into the parameters, and keeps the
//! previous value of anything a state leaves out. So a damaged or hand-edited
//! project could play other notes than the host shows (a seed of -1 shows as
//! 0), silence every part (a knob at 1e39) or even abort the host (a channel
//! of `i32::MIN`). Here every value is brought into its parameter's range,
//! every missing value takes its default, and stored latents that are not
//! finite or are absurdly large are refused, so that a load replaces the
//! whole state and the host shows what plays.

use nice_plug::params::internals::ParamPtr;
use nice_plug::plugin::{ParamValue, PluginState};
use nice_plug::prelude::*;

use crate::params::LatentTrioParams;
use crate::stored::StoredLatents;

/// Largest latent value a saved clip or scene may hold. Encoded latents are
/// near a standard normal (within about ±6); anything far beyond is damage.
const MAX_STORED_LATENT: f32 = 50.0;

/// Brings `state` into shape for this version's parameters; returns what had
/// to be changed, in words, for the log.
pub fn sanitise(state: &mut PluginState) -> Vec<String> {
    let defaults = LatentTrioParams::default();
    let mut changes = Vec::new();
    for (id, param, _group) in defaults.param_map() {
        let value = state.params.get(&id).cloned();
        let sanitised = sanitised_value(param, value.as_ref());
        if !value.as_ref().is_some_and(|value| same(value, &sanitised)) {
            if value.is_some() {
                let saved = value.as_ref().map(describe).unwrap_or_default();
                let now = describe(&sanitised);
                changes.push(format!("{id}: {saved} is not a valid value, now {now}"));
            }
            state.params.insert(id, sanitised);
        }
    }
    let fields = defaults.serialize_fields();
    for (name, default) in fields {
        let valid = state
            .fields
            .get(&name)
            .is_some_and(|saved| field_is_valid(&name, saved));
        if !valid {
            if state.fields.contains_key(&name) {
                changes.push(format!("{name} could not be used and was reset"));
            }
            state.fields.insert(name, default);
        }
    }
    changes
}

/// A value as text, for logging.
fn describe(value: &ParamValue) -> String {
    format!("{value:?}")
}

/// Whether two values are the same (nice-plug's `ParamValue` has no
/// equality; -0.0 and 0.0 are the same knob position).
fn same(a: &ParamValue, b: &ParamValue) -> bool {
    match (a, b) {
        (ParamValue::F32(a), ParamValue::F32(b)) => a == b,
        (ParamValue::I32(a), ParamValue::I32(b)) => a == b,
        (ParamValue::Bool(a), ParamValue::Bool(b)) => a == b,
        (ParamValue::String(a), ParamValue::String(b)) => a == b,
        _ => false,
    }
}

/// The value `param` should load: the saved one where it is usable (brought
/// into range), else the default.
fn sanitised_value(param: ParamPtr, saved: Option<&ParamValue>) -> ParamValue {
    // SAFETY: `param` points into the `LatentTrioParams` that `sanitise`
    // owns for the whole call.
    unsafe {
        // Clamped to the ends first: nice-plug's own range arithmetic
        // overflows on values like i32::MIN.
        let (low, high) = (param.preview_plain(0.0), param.preview_plain(1.0));
        let in_range = |plain: f32| {
            let clamped = plain.clamp(low.min(high), low.max(high));
            param.preview_plain(param.preview_normalized(clamped))
        };
        let default = param.default_plain_value();
        match (param, saved) {
            (ParamPtr::FloatParam(_), Some(ParamValue::F32(v))) if v.is_finite() => {
                ParamValue::F32(in_range(*v))
            }
            (ParamPtr::FloatParam(_), _) => ParamValue::F32(default),
            (ParamPtr::IntParam(_), Some(ParamValue::I32(v))) => {
                ParamValue::I32(in_range(*v as f32).round() as i32)
            }
            (ParamPtr::IntParam(_), _) => ParamValue::I32(default.round() as i32),
            (ParamPtr::BoolParam(_), Some(ParamValue::Bool(v))) => ParamValue::Bool(*v),
            (ParamPtr::BoolParam(_), _) => ParamValue::Bool(default >= 0.5),
            (ParamPtr::EnumParam(inner), Some(ParamValue::String(id)))
                if (*inner).set_from_id(id) =>
            {
                ParamValue::String(id.clone())
            }
            (ParamPtr::EnumParam(_), Some(ParamValue::I32(index))) => {
                ParamValue::I32(in_range(*index as f32).round() as i32)
            }
            (ParamPtr::EnumParam(_), _) => ParamValue::I32(default.round() as i32),
        }
    }
}

/// Whether a persisted field's JSON is usable.
fn field_is_valid(name: &str, json: &str) -> bool {
    match name {
        "stored-latents" => serde_json::from_str::<StoredLatents>(json)
            .is_ok_and(|stored| stored_latents_are_sane(&stored)),
        "seed-rolls" => serde_json::from_str::<u32>(json).is_ok(),
        "new-seed-held" => serde_json::from_str::<bool>(json).is_ok(),
        _ => true,
    }
}

/// Every latent finite and within [`MAX_STORED_LATENT`].
fn stored_latents_are_sane(stored: &StoredLatents) -> bool {
    stored
        .all_latents()
        .all(|value| value.is_finite() && value.abs() <= MAX_STORED_LATENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved_default() -> PluginState {
        let params = LatentTrioParams::default();
        let mut state = PluginState {
            version: String::new(),
            params: Default::default(),
            fields: params.serialize_fields(),
        };
        sanitise(&mut state);
        state
    }

    #[test]
    fn a_state_that_leaves_things_out_loads_their_defaults() {
        let mut state = PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        };
        sanitise(&mut state);
        assert_eq!(describe(&state.params["seed"]), "I32(1)");
        assert_eq!(describe(&state.params["bass_channel"]), "I32(2)");
        assert!(state.fields.contains_key("stored-latents"));
    }

    #[test]
    fn values_out_of_range_are_brought_into_it() {
        let mut state = saved_default();
        state
            .params
            .insert("bass_channel".into(), ParamValue::I32(i32::MIN));
        state.params.insert("seed".into(), ParamValue::I32(-1));
        state
            .params
            .insert("drums_density".into(), ParamValue::F32(1e30));
        state
            .params
            .insert("bass_density".into(), ParamValue::F32(f32::INFINITY));
        state
            .params
            .insert("melody_temperature".into(), ParamValue::F32(f32::NAN));
        let changes = sanitise(&mut state);
        assert_eq!(describe(&state.params["bass_channel"]), "I32(1)");
        assert_eq!(describe(&state.params["seed"]), "I32(0)");
        assert_eq!(describe(&state.params["drums_density"]), "F32(2.0)");
        assert_eq!(describe(&state.params["bass_density"]), "F32(0.0)");
        assert_eq!(describe(&state.params["melody_temperature"]), "F32(0.5)");
        assert_eq!(changes.len(), 5, "{changes:?}");
    }

    #[test]
    fn a_knob_saved_at_minus_zero_is_no_repair() {
        let mut state = saved_default();
        state
            .params
            .insert("bass_latent_3".into(), ParamValue::F32(-0.0));
        assert_eq!(sanitise(&mut state), Vec::<String>::new());
    }

    #[test]
    fn absurd_or_garbled_stored_latents_are_refused() {
        for garbage in [
            "not json".to_string(),
            r#"{"clips":[null,null,null],"scenes":[{"latents":[[1e30],[],[]]},null]}"#.into(),
        ] {
            let mut state = saved_default();
            state.fields.insert("stored-latents".into(), garbage);
            let changes = sanitise(&mut state);
            assert_eq!(changes.len(), 1);
            assert_eq!(
                state.fields["stored-latents"],
                LatentTrioParams::default().serialize_fields()["stored-latents"]
            );
        }
    }
}
