//! The alarm gate's probe: CloudWatch `DescribeAlarms` in the stage account (stage role,
//! stage region), metric and composite alarms alike.

use ferry_core::Result;
use ferry_core::ports::{AlarmProbe, Target};

use crate::error::{self, Attempt};
use crate::exec::StageAccess;

pub struct CloudWatchAlarms {
    pub access: StageAccess,
}

impl AlarmProbe for CloudWatchAlarms {
    fn states(&self, target: &Target, alarms: &[String]) -> Result<Vec<(String, String, String)>> {
        let (config, role) = self.access.assume(target)?;
        self.access.aws.rt.block_on(describe(&aws_sdk_cloudwatch::Client::new(&config), role.as_str(), alarms))
    }
}

/// `(name, state, reason)` of each of `alarms` that exists, acting as `role`.
pub async fn describe(cw: &aws_sdk_cloudwatch::Client, role: &str, alarms: &[String]) -> Result<Vec<(String, String, String)>> {
    let resource = alarms.join(", ");
    let out = cw
        .describe_alarms()
        .set_alarm_names(Some(alarms.to_vec()))
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
        .send()
        .await
        .map_err(|e| error::map(Attempt { who: role, action: "cloudwatch:DescribeAlarms", resource: &resource }, &e))?;
    let metric = out.metric_alarms().iter().map(|a| (a.alarm_name(), a.state_value().map(|s| s.as_str()), a.state_reason()));
    let composite = out.composite_alarms().iter().map(|a| (a.alarm_name(), a.state_value().map(|s| s.as_str()), a.state_reason()));
    Ok(metric
        .chain(composite)
        .filter_map(|(n, s, r)| Some((n?.to_owned(), s.unwrap_or("UNKNOWN").to_owned(), r.unwrap_or("").to_owned())))
        .collect())
}
