//! The deploy actions on the aws backend (moto, six accounts): the s3 copy into the stage
//! account, CloudFormation through change sets (and the change set the approver sees), and an
//! image promoted by digest with a CodePipeline run in the stage account.

use std::collections::BTreeMap;

use crate::aws::{ARTIFACTS, AwsWorld, PROD, STAGING, TOOLING, boto, unique};
use crate::support::venv_python;

#[test]
fn the_s3_action_copies_the_release_into_the_stage_account_tagged_and_verified() {
    let w = AwsWorld::new();
    w.write_project("");
    let site = unique("site");
    w.create_bucket(STAGING, "ferry-deploy", &site);
    w.set_deploy(
        "staging",
        &format!("    tags: {{environment: staging}}\n    deploy:\n      - type: s3\n        bucket: {site}\n        prefix: web\n"),
    );
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap().replace("aws:\n", "tags: {team: shop}\naws:\n");
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let ci = w.role(TOOLING, "ci", "github-run-5");
    let id = w.release(&ci);
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert!(r.stdout.contains("promoted"), "{}", r.stdout);
    let s3 = w.s3(&w.role(STAGING, "ferry-deploy", "inspect"));
    let body = w.rt.block_on(s3.get_object().bucket(&site).key("web/out/app.bin").send()).unwrap();
    assert_eq!(w.rt.block_on(body.body.collect()).unwrap().into_bytes().as_ref(), b"version one\n");
    let tags = w.rt.block_on(s3.get_object_tagging().bucket(&site).key("web/out/app.bin").send()).unwrap();
    let tags: BTreeMap<String, String> = tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert_eq!(tags.get("ferry:release"), Some(&id));
    assert_eq!(tags.get("ferry:stage").map(String::as_str), Some("staging"));
    assert_eq!(tags.get("team").map(String::as_str), Some("shop"));
    assert_eq!(tags.get("environment").map(String::as_str), Some("staging"));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().find(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert!(end["details"]["detail"].as_str().unwrap().contains("digests verified"), "{end:#}");
}

#[test]
fn the_cloudformation_action_creates_then_updates_a_stack_through_change_sets_tagged_with_the_changes_recorded() {
    let w = AwsWorld::new();
    w.write_project("");
    let stack = w.deploy_template("staging");
    let ci = w.role(TOOLING, "ci", "github-run-6");
    let a = w.release(&ci);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &a, "--to", "staging"]).expect(0);
    let cfn = aws_sdk_cloudformation::Client::new(&w.role(STAGING, "ferry-deploy", "inspect"));
    let describe = |w: &AwsWorld| w.rt.block_on(cfn.describe_stacks().stack_name(&stack).send()).unwrap().stacks()[0].clone();
    let s = describe(&w);
    assert_eq!(s.stack_status().unwrap().as_str(), "CREATE_COMPLETE");
    // (moto does not fill a stack's outputs after a change set runs; AWS does, and ferry
    // records them: see `DeployReport::outputs`.)
    let created = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &a, "--output", "json"]).expect(0).json();
    let end = created["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert_eq!(end["details"]["output"], "Add Queue AWS::SQS::Queue", "the change set's summary is recorded: {end:#}");
    let tags: BTreeMap<String, String> = s.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    assert_eq!(tags.get("ferry:release"), Some(&a));
    assert_eq!(tags.get("ferry:stage").map(String::as_str), Some("staging"));

    // A new release updates the stack through a change set; its outputs are captured.
    std::fs::write(w.path("app/src.txt"), "version two\n").unwrap();
    let b = w.ferry(&ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &b, "--to", "staging"]).expect(0);
    let s = describe(&w);
    assert_eq!(s.stack_status().unwrap().as_str(), "UPDATE_COMPLETE");
    assert!(s.parameters().iter().any(|p| p.parameter_key() == Some("Release") && p.parameter_value() == Some(b.as_str())));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &b, "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert!(end["details"]["detail"].as_str().unwrap().starts_with(&format!("stack `{stack}` UPDATE_COMPLETE")), "{end:#}");

    // The same release again changes nothing: that is not a failure.
    let again = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &b, "--to", "staging", "--redeploy"]).expect(0);
    assert!(again.stdout.contains("promoted"), "{}", again.stdout);
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &b, "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert_eq!(end["details"]["detail"], format!("stack `{stack}`: no changes"));
}

/// What a build's `docker push` does, with boto3: upload the config and layer blobs to the
/// central repository (artifacts account, through a role the build may assume there), then
/// put the manifest under a tag. ECR's digest is the manifest's sha256.
const PUSH: &str = r#"import boto3, hashlib, json, sys
account, repo, tag = sys.argv[1:4]
c = boto3.client('sts').assume_role(RoleArn=f'arn:aws:iam::{account}:role/ci-push', RoleSessionName='push')['Credentials']
ecr = boto3.client('ecr', aws_access_key_id=c['AccessKeyId'], aws_secret_access_key=c['SecretAccessKey'], aws_session_token=c['SessionToken'])
config, layer = b'{"architecture":"amd64","os":"linux"}', open('out/app.bin', 'rb').read()
d = lambda b: 'sha256:' + hashlib.sha256(b).hexdigest()
for blob in (config, layer):
    u = ecr.initiate_layer_upload(repositoryName=repo)['uploadId']
    ecr.upload_layer_part(repositoryName=repo, uploadId=u, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=u, layerDigests=[d(blob)])
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(layer), "size": len(layer)}]})
ecr.put_image(repositoryName=repo, imageManifest=manifest, imageDigest=d(manifest.encode()), imageTag=tag)
"#;

#[test]
fn an_image_built_once_is_signed_by_digest_and_promoted_with_a_codepipeline_run_in_the_stage_account() {
    use aws_sdk_ecr::primitives::Blob;
    use aws_sdk_ecr::types::ImageIdentifier;

    let w = AwsWorld::new();
    w.write_project("");
    let repo = unique("shop/web");
    let legacy = unique("legacy");
    let central = aws_sdk_ecr::Client::new(&w.role(ARTIFACTS, "setup", "setup"));
    let staging = aws_sdk_ecr::Client::new(&w.role(STAGING, "setup", "setup"));
    w.rt.block_on(central.create_repository().repository_name(&repo).send()).unwrap();
    w.rt.block_on(staging.create_repository().repository_name(&repo).send()).unwrap();
    // moto cannot hand out layer downloads (`GetDownloadUrlForLayer`): the stage repository
    // holds the blobs already, so the promotion copies the manifest (see mocks.rs for blobs).
    for blob in [b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec(), b"version one\n".to_vec()] {
        let up = w.rt.block_on(staging.initiate_layer_upload().repository_name(&repo).send()).unwrap();
        let id = up.upload_id().unwrap();
        let part = staging.upload_layer_part().repository_name(&repo).upload_id(id).part_first_byte(0);
        let part = part.part_last_byte(i64::try_from(blob.len()).unwrap() - 1).layer_part_blob(Blob::new(blob.clone()));
        w.rt.block_on(part.send()).unwrap();
        let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&blob)));
        w.rt.block_on(staging.complete_layer_upload().repository_name(&repo).upload_id(id).layer_digests(digest).send()).unwrap();
    }
    create_codepipeline(&w, STAGING, &legacy);

    std::fs::write(w.path("app/push.py"), PUSH).unwrap();
    let py = venv_python();
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap();
    let yaml = yaml
        .replace("  command: sh build.sh\n", &format!("  command: sh build.sh && {} push.py {ARTIFACTS} {repo} build-7\n", py.display()))
        .replace(
            "      path: out/app.bin\n",
            &format!("      path: out/app.bin\n  images:\n    - name: web\n      repository: {repo}\n      tag: build-7\n"),
        );
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let actions = format!(
        "    deploy:\n      - type: ecr\n        image: web\n      - type: codepipeline\n        pipeline: {legacy}\n        variables:\n          IMAGE: \"${{image.web.digest}}\"\n          RELEASE: \"${{release}}\"\n        timeout: 1m\n      - type: command\n        run: echo \"$FERRY_IMAGE_WEB\" >> deploys.log\n"
    );
    w.set_deploy("staging", &actions);

    let ci = w.role(TOOLING, "ci", "github-run-8");
    w.ferry(&ci, &["validate", "pipeline.yaml"]).expect(0);
    let id = w.release(&ci);
    let pushed =
        w.rt.block_on(
            central.batch_get_image().repository_name(&repo).image_ids(ImageIdentifier::builder().image_tag("build-7").build()).send(),
        )
        .unwrap();
    let manifest = pushed.images()[0].image_manifest().unwrap().to_owned();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest.as_bytes()));

    // The release records the image by digest and the signature covers it.
    let verified = w.ferry(&ci, &["verify", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let image = &verified["images"][0];
    assert_eq!(image["digest"], digest.as_str(), "{verified:#}");
    assert_eq!(image["repository"], format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{repo}"));
    assert_eq!(image["tag"], "build-7");

    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    // The stage account's repository has exactly those bytes under the release and stage tags.
    for tag in [id.as_str(), "staging"] {
        let got = w
            .rt
            .block_on(staging.batch_get_image().repository_name(&repo).image_ids(ImageIdentifier::builder().image_tag(tag).build()).send())
            .unwrap();
        assert_eq!(got.images().len(), 1, "tag {tag}");
        assert_eq!(got.images()[0].image_manifest(), Some(manifest.as_str()));
    }
    // Later actions see the image pinned by digest.
    assert_eq!(w.deploys(), vec![format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{repo}@sha256:{digest}")]);
    // The CodePipeline execution ran in the staging account with the release's values.
    let cp = aws_sdk_codepipeline::Client::new(&w.role(STAGING, "setup", "inspect"));
    let runs = w.rt.block_on(cp.list_pipeline_executions().pipeline_name(&legacy).send()).unwrap();
    let run = runs.pipeline_execution_summaries()[0].pipeline_execution_id().unwrap().to_owned();
    let exec = w.rt.block_on(cp.get_pipeline_execution().pipeline_name(&legacy).pipeline_execution_id(&run).send()).unwrap();
    let vars: BTreeMap<String, String> = exec
        .pipeline_execution()
        .unwrap()
        .variables()
        .iter()
        .map(|v| (v.name().unwrap().to_owned(), v.resolved_value().unwrap().to_owned()))
        .collect();
    assert_eq!(vars["RELEASE"], id);
    assert_eq!(vars["IMAGE"], format!("sha256:{digest}"));
    // Both outcomes are in the audit log.
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let ends: Vec<String> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deploy_end")
        .map(|e| e["details"]["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(ends[0].contains(&format!("sha256:{digest} promoted to {STAGING}.dkr.ecr.eu-west-1.amazonaws.com/{repo}")), "{ends:?}");
    assert!(ends[0].contains("digest re-checked"), "{ends:?}");
    assert!(ends[1].contains(&format!("CodePipeline `{legacy}` execution {run} succeeded")), "{ends:?}");
}

/// A two-stage CodePipeline pipeline (V2, so it takes variables) in `account`, with the
/// service role moto checks for.
fn create_codepipeline(w: &AwsWorld, account: &str, name: &str) {
    boto(
        w,
        account,
        &format!(
            "trust={{'Version':'2012-10-17','Statement':[{{'Effect':'Allow','Principal':{{'Service':'codepipeline.amazonaws.com'}},'Action':'sts:AssumeRole'}}]}}\n\
             arn=boto3.client('iam',**kw).create_role(RoleName='{name}-role',AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn']\n\
             act=lambda n,c:{{'name':n,'actionTypeId':{{'category':c,'owner':'AWS','provider':'S3','version':'1'}}}}\n\
             boto3.client('codepipeline',**kw).create_pipeline(pipeline={{'name':'{name}','roleArn':arn,'pipelineType':'V2',\
             'artifactStore':{{'type':'S3','location':'artifacts'}},\
             'stages':[{{'name':'Source','actions':[act('Source','Source')]}},{{'name':'Deploy','actions':[act('Deploy','Deploy')]}}]}})\n"
        ),
    );
}

#[test]
fn the_approver_of_a_cloudformation_stage_sees_the_change_set_before_approving() {
    let w = AwsWorld::new();
    w.write_project("");
    let stack = w.deploy_template("prod");
    let ci = w.role(TOOLING, "ci", "github-run-9");
    // Waiting for approval, ferry has CloudFormation prepare (and discard) the change set.
    let id = w.at_prod_gate(&ci);
    let alice = w.role(TOOLING, "release-approvers", "alice");
    let refused = w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod"]).expect(2);
    assert!(refused.stderr.contains(&format!("  change set    stack `{stack}`: Add Queue AWS::SQS::Queue")), "{}", refused.stderr);
    let approved =
        w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes", "--output", "json"]).expect(0);
    assert_eq!(approved.json()["summary"]["change_sets"], serde_json::json!([format!("stack `{stack}`: Add Queue AWS::SQS::Queue")]));
    // Nothing was deployed by the preview: the stack is created only after approval.
    let bob = w.role(TOOLING, "release-approvers", "bob");
    w.ferry(&bob, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    let cfn = aws_sdk_cloudformation::Client::new(&w.role(PROD, "ferry-deploy", "inspect"));
    let s = w.rt.block_on(cfn.describe_stacks().stack_name(&stack).send()).unwrap().stacks()[0].clone();
    assert_eq!(s.stack_status().unwrap().as_str(), "CREATE_COMPLETE");
}
