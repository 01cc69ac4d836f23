mod fixture;
mod flows;
mod power_loss;
mod props;
mod refusals;
