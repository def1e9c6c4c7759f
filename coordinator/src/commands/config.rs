//! `slsg config`: checks a training config, prints it with every default, counts parameters.
//! Forwards to `slsg::config`; owns only the printing.

use slsg::backend::cpu_device;
use slsg::model::trainable_parameters;

use super::args::ConfigArgs;
use super::streams::{out, outln};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print the resolved config as TOML (with no file, every default).
    #[arg(long)]
    print_default: bool,
    /// Print the trainable parameters of each network for the resolved `[model]`.
    #[arg(long)]
    params: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = args.config.load()?;
    if args.print_default || !args.params {
        out!("{}", config.to_toml());
    }
    if args.params {
        let device = cpu_device().autodiff();
        let m = &config.model;
        outln!(
            "trainable parameters at {}×{} px, width {}:",
            m.image_size,
            m.image_size,
            m.width
        );
        outln!(
            "  encoder (ResNet-18)  {:>12}",
            trainable_parameters(&m.encoder().init(&device))
        );
        outln!(
            "  GPT-Net              {:>12}",
            trainable_parameters(&m.gpt_net().init(&device))
        );
        outln!(
            "  D-Net                {:>12}",
            trainable_parameters(&m.discriminator().init(&device))
        );
        outln!(
            "  SegNet               {:>12}   (the paper reports 20.46 M)",
            trainable_parameters(&m.segnet().init(&device))
        );
    }
    Ok(())
}
