//! CodePipeline on moto: an execution started in the stage account, waited for, and its Manual
//! approval answered.

use std::collections::BTreeMap;

use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType, PipelineDeclaration, PipelineType,
    StageDeclaration,
};
use ferry_aws::codepipeline::{Run, execute};

use super::*;

const PROD: &str = "666666666666";

#[test]
fn a_codepipeline_execution_is_started_in_the_target_account_with_the_release_as_a_variable() {
    let env = env();
    let config = env.as_role(PROD, "ferry-deploy");
    let name = unique("legacy");
    let iam = codepipeline_service_role(&env, PROD);
    let cp = aws_sdk_codepipeline::Client::new(&config);
    let action = |name: &str, category, provider: &str| {
        ActionDeclaration::builder()
            .name(name)
            .action_type_id(
                ActionTypeId::builder().category(category).owner(ActionOwner::Aws).provider(provider).version("1").build().unwrap(),
            )
            .build()
            .unwrap()
    };
    let pipeline = PipelineDeclaration::builder()
        .name(&name)
        .role_arn(iam)
        .pipeline_type(PipelineType::V2)
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build().unwrap())
        .stages(StageDeclaration::builder().name("Source").actions(action("Source", ActionCategory::Source, "S3")).build().unwrap())
        .stages(StageDeclaration::builder().name("Deploy").actions(action("Deploy", ActionCategory::Deploy, "S3")).build().unwrap())
        .build()
        .unwrap();
    env.aws.rt.block_on(cp.create_pipeline().pipeline(pipeline).send()).unwrap();

    let run = Run {
        pipeline: &name,
        variables: BTreeMap::from([("RELEASE".to_owned(), "r0123456789abcdef".to_owned())]),
        approve: None,
        timeout: Duration::from_secs(60),
        poll: Duration::from_millis(50),
        summary: String::new(),
        role: "ferry-deploy",
        stop: None,
    };
    let report = env.aws.rt.block_on(execute(&cp, &run)).unwrap();
    let id = &report.outputs[&format!("codepipeline.{name}.execution")];
    // The execution is in the prod account, with the release's value.
    let exec = env.aws.rt.block_on(cp.get_pipeline_execution().pipeline_name(&name).pipeline_execution_id(id).send()).unwrap();
    let exec = exec.pipeline_execution().unwrap();
    assert_eq!(exec.variables()[0].name(), Some("RELEASE"));
    assert_eq!(exec.variables()[0].resolved_value(), Some("r0123456789abcdef"));
    // Not visible from another account.
    let staging = aws_sdk_codepipeline::Client::new(&env.as_role(STAGING, "ferry-deploy"));
    assert!(env.aws.rt.block_on(staging.get_pipeline().name(&name).send()).is_err());
}

/// A service role CodePipeline may assume in `account` (moto checks its trust policy).
fn codepipeline_service_role(env: &Env, account: &str) -> String {
    let name = unique("codepipeline-service");
    let script = format!(
        "import boto3, json\n\
         c=boto3.client('sts',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id='test',aws_secret_access_key='test').assume_role(RoleArn='arn:aws:iam::{account}:role/setup',RoleSessionName='setup')['Credentials']\n\
         iam=boto3.client('iam',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken'])\n\
         trust={{'Version':'2012-10-17','Statement':[{{'Effect':'Allow','Principal':{{'Service':'codepipeline.amazonaws.com'}},'Action':'sts:AssumeRole'}}]}}\n\
         iam.create_role(RoleName='{name}',AssumeRolePolicyDocument=json.dumps(trust))\n",
        e = env._moto.endpoint()
    );
    let out = std::process::Command::new(ferry_testkit::venv_bin("python")).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    format!("arn:aws:iam::{account}:role/{name}")
}
