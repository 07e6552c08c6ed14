//! The VST3 bundle, loaded through its factory the way a VST3 host does:
//! component and processor, a few bars with a transport, notes on the grid.

use std::cell::RefCell;
use std::ffi::{CStr, c_void};
use std::ptr;

use vst3::Steinberg::Vst::ProcessContext_::StatesAndFlags_::*;
use vst3::Steinberg::Vst::*;
use vst3::Steinberg::*;
use vst3::{Class, ComPtr, ComWrapper, Interface};

/// Collects the note events the plugin sends. Capacity is reserved up front:
/// the plugin's debug build forbids allocation inside `process()`, and this
/// list is called from there.
struct Events {
    received: RefCell<Vec<(i32, bool, i16, i16)>>,
}

impl Class for Events {
    type Interfaces = (IEventList,);
}

impl IEventListTrait for Events {
    unsafe fn getEventCount(&self) -> int32 {
        0
    }
    unsafe fn getEvent(&self, _index: int32, _e: *mut Event) -> tresult {
        kInvalidArgument
    }
    unsafe fn addEvent(&self, e: *mut Event) -> tresult {
        let event = unsafe { &*e };
        let mut received = self.received.borrow_mut();
        if received.len() == received.capacity() {
            return kResultFalse;
        }
        match u32::from(event.r#type) {
            t if t == Event_::EventTypes_::kNoteOnEvent => {
                let on = unsafe { event.__field0.noteOn };
                received.push((event.sampleOffset, true, on.channel, on.pitch));
            }
            t if t == Event_::EventTypes_::kNoteOffEvent => {
                let off = unsafe { event.__field0.noteOff };
                received.push((event.sampleOffset, false, off.channel, off.pitch));
            }
            _ => {}
        }
        kResultOk
    }
}

#[test]
fn the_vst3_bundle_plays_notes_on_the_grid() {
    let binary = latent_trio_host::test_bundles()
        .join("Latent Trio.vst3/Contents/x86_64-linux/Latent Trio.so");
    // SAFETY: loading and calling the plugin under test.
    unsafe {
        let library = libloading::Library::new(&binary).expect("the VST3 module loads");
        let module_entry: libloading::Symbol<unsafe extern "C" fn(*mut c_void) -> bool> =
            library.get(b"ModuleEntry").unwrap();
        assert!(module_entry(ptr::null_mut()));
        let get_factory: libloading::Symbol<unsafe extern "system" fn() -> *mut IPluginFactory> =
            library.get(b"GetPluginFactory").unwrap();
        let factory = ComPtr::from_raw(get_factory()).expect("a factory");

        let mut found = None;
        for index in 0..factory.countClasses() {
            let mut info: PClassInfo = std::mem::zeroed();
            assert_eq!(factory.getClassInfo(index, &mut info), kResultOk);
            let name = CStr::from_ptr(info.name.as_ptr())
                .to_string_lossy()
                .into_owned();
            let category = CStr::from_ptr(info.category.as_ptr())
                .to_string_lossy()
                .into_owned();
            if category == "Audio Module Class" {
                found = Some((info.cid, name));
            }
        }
        let (cid, name) = found.expect("an audio module class");
        assert_eq!(name, "Latent Trio");

        let mut object: *mut c_void = ptr::null_mut();
        let result = factory.createInstance(
            cid.as_ptr(),
            IComponent::IID.as_ptr() as *const char8,
            &mut object,
        );
        assert_eq!(result, kResultOk);
        let component = ComPtr::<IComponent>::from_raw(object as *mut IComponent).unwrap();
        assert_eq!(component.initialize(ptr::null_mut()), kResultOk);
        let processor = component
            .cast::<IAudioProcessor>()
            .expect("the component processes");
        component.activateBus(
            MediaTypes_::kAudio as i32,
            BusDirections_::kOutput as i32,
            0,
            1,
        );
        component.activateBus(
            MediaTypes_::kEvent as i32,
            BusDirections_::kOutput as i32,
            0,
            1,
        );

        let (rate, block) = (48_000.0, 512i32);
        let mut setup = ProcessSetup {
            processMode: ProcessModes_::kOffline as i32,
            symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
            maxSamplesPerBlock: block,
            sampleRate: rate,
        };
        // nice-plug 0.4.2 files each setup under the previous call's process
        // mode, so the offline mode only reaches the plugin on a second call.
        assert_eq!(processor.setupProcessing(&mut setup), kResultOk);
        assert_eq!(processor.setupProcessing(&mut setup), kResultOk);
        assert_eq!(component.setActive(1), kResultOk);
        processor.setProcessing(1);

        let events = ComWrapper::new(Events {
            received: RefCell::new(Vec::with_capacity(1 << 16)),
        });
        let event_list = events.to_com_ptr::<IEventList>().unwrap();
        let mut left = vec![0.0f32; block as usize];
        let mut right = vec![0.0f32; block as usize];
        let mut notes = Vec::new();
        let spq = rate * 60.0 / 120.0;
        for index in 0..(4 * 96_000 / block as i64) {
            let position = (index * i64::from(block)) as f64 / spq;
            let mut context: ProcessContext = std::mem::zeroed();
            context.state =
                kPlaying | kTempoValid | kProjectTimeMusicValid | kBarPositionValid | kTimeSigValid;
            context.sampleRate = rate;
            context.projectTimeSamples = index * i64::from(block);
            context.projectTimeMusic = position;
            context.barPositionMusic = (position / 4.0).floor() * 4.0;
            context.tempo = 120.0;
            context.timeSigNumerator = 4;
            context.timeSigDenominator = 4;
            let mut channels = [left.as_mut_ptr(), right.as_mut_ptr()];
            let mut output = AudioBusBuffers {
                numChannels: 2,
                silenceFlags: 0,
                __field0: AudioBusBuffers__type0 {
                    channelBuffers32: channels.as_mut_ptr(),
                },
            };
            let mut data = ProcessData {
                processMode: ProcessModes_::kOffline as i32,
                symbolicSampleSize: SymbolicSampleSizes_::kSample32 as i32,
                numSamples: block,
                numInputs: 0,
                numOutputs: 1,
                inputs: ptr::null_mut(),
                outputs: &mut output,
                inputParameterChanges: ptr::null_mut(),
                outputParameterChanges: ptr::null_mut(),
                inputEvents: ptr::null_mut(),
                outputEvents: event_list.as_ptr(),
                processContext: &mut context,
            };
            assert_eq!(processor.process(&mut data), kResultOk);
            for (offset, on, channel, pitch) in events.received.borrow_mut().drain(..) {
                notes.push((
                    index * i64::from(block) + i64::from(offset),
                    on,
                    channel,
                    pitch,
                ));
            }
        }
        processor.setProcessing(0);
        component.setActive(0);
        component.terminate();

        let ons: Vec<_> = notes.iter().filter(|n| n.1).collect();
        assert!(ons.len() > 20, "four bars of music: {} notes", ons.len());
        for (sample, _, channel, _) in &ons {
            assert_eq!(
                sample % 6000,
                0,
                "note-on at sample {sample} is not on a 16th (6000 samples)"
            );
            assert!([0, 1, 9].contains(channel));
        }
    }
}
