// check.mjs - the AWS SDK for JavaScript v3 against spinup-localcloud.
//
// Run by tests/test_sdk.sh with LC_URL (the provider), LC_KEY / LC_SECRET
// (a key pair it accepts) and LC_GROUP (a group of LC_SIZE instances, max
// LC_MAX). Every API the provider implements is called through the SDK's
// own signer and parsers: the SDK must accept each answer (fields parsed to
// the right values and types) and the provider each signature. Errors must
// reach the SDK as the named exception with the right HTTP status.
// Prints one line per check and "N passed, N failed"; exit 1 on a failure.
import {
  AutoScalingClient, DescribeAutoScalingGroupsCommand, SetDesiredCapacityCommand,
  SetInstanceProtectionCommand, TerminateInstanceInAutoScalingGroupCommand,
  SetInstanceHealthCommand,
} from '@aws-sdk/client-auto-scaling';
import { EC2Client, DescribeInstancesCommand, paginateDescribeInstances } from '@aws-sdk/client-ec2';

const url = process.env.LC_URL;
const group = process.env.LC_GROUP;
const size = Number(process.env.LC_SIZE);
const max = Number(process.env.LC_MAX);
const good = { accessKeyId: process.env.LC_KEY, secretAccessKey: process.env.LC_SECRET };
const region = 'us-east-1';

let passed = 0;
let failed = 0;

function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`);
  }
}

function clients(credentials, maxAttempts = 3) {
  const opts = { region, endpoint: url, credentials, maxAttempts };
  return { asg: new AutoScalingClient(opts), ec2: new EC2Client(opts) };
}

async function expectError(name, promise, errName, status) {
  try {
    await promise;
    check(name, false, 'no error');
  } catch (err) {
    check(name, err.name === errName && err.$metadata?.httpStatusCode === status,
      { name: err.name, status: err.$metadata?.httpStatusCode, message: err.message });
    return err;
  }
  return null;
}

async function admin(path) {
  const r = await fetch(`${url}/_admin/${path}`, { method: 'POST' });
  if (r.status !== 200) throw new Error(`admin ${path}: ${r.status}`);
}

async function describeGroup(asg) {
  const out = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }));
  return out.AutoScalingGroups[0];
}

async function waitInService(asg, n) {
  for (let i = 0; i < 100; i++) {
    const g = await describeGroup(asg);
    if (g.Instances.length === n && g.Instances.every((x) => x.LifecycleState === 'InService')) return g;
    await new Promise((r) => setTimeout(r, 100));
  }
  return describeGroup(asg);
}

async function main() {
  const { asg, ec2 } = clients(good);

  // DescribeAutoScalingGroups: shapes and types as the SDK parses them
  let g = await waitInService(asg, size);
  check('asg: group found with its sizes', g.AutoScalingGroupName === group && g.MinSize === 0 &&
    g.MaxSize === max && g.DesiredCapacity === size, g);
  check('asg: instances parsed', g.Instances.length === size && g.Instances.every((x) =>
    /^i-[0-9a-f]{17}$/.test(x.InstanceId) && x.HealthStatus === 'Healthy' &&
    x.ProtectedFromScaleIn === false && typeof x.AvailabilityZone === 'string'), g.Instances[0]);
  check('asg: CreatedTime is a date', g.CreatedTime instanceof Date && !isNaN(g.CreatedTime));
  const none = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['no-such'] }));
  check('asg: unknown group is an empty list', none.AutoScalingGroups.length === 0);

  // DescribeInstances: every page through the SDK's paginator
  const seen = [];
  let pages = 0;
  for await (const page of paginateDescribeInstances({ client: ec2, pageSize: 5 }, {
    Filters: [{ Name: 'tag:aws:autoscaling:groupName', Values: [group] }], MaxResults: 5,
  })) {
    pages++;
    for (const r of page.Reservations) for (const i of r.Instances) seen.push(i);
  }
  check('ec2: paginated over every instance', seen.length === size && pages === Math.ceil(size / 5),
    { seen: seen.length, pages });
  check('ec2: instance fields parsed', seen.every((i) => /^127\.\d+\.\d+\.\d+$/.test(i.PrivateIpAddress) &&
    i.PrivateIpAddress !== '127.0.0.1' && i.State.Name === 'running' && i.State.Code === 16 &&
    i.LaunchTime instanceof Date && i.Tags.some((t) => t.Key === 'aws:autoscaling:groupName' &&
    t.Value === group)), seen[0]);
  check('ec2: addresses distinct', new Set(seen.map((i) => i.PrivateIpAddress)).size === seen.length);
  const ids = g.Instances.map((x) => x.InstanceId);
  const byId = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [ids[0], ids[1]] }));
  check('ec2: InstanceIds selects', byId.Reservations.flatMap((r) => r.Instances).length === 2);
  await expectError('ec2: unknown id is InvalidInstanceID.NotFound',
    ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })),
    'InvalidInstanceID.NotFound', 400);
  await expectError('ec2: MaxResults 1001 is refused',
    ec2.send(new DescribeInstancesCommand({ MaxResults: 1001 })), 'InvalidParameterValue', 400);

  // mutations
  const cap = await asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: group,
    DesiredCapacity: size + 1, HonorCooldown: false }));
  check('asg: SetDesiredCapacity answered', cap.$metadata.httpStatusCode === 200);
  g = await waitInService(asg, size + 1);
  check('asg: capacity raised', g.DesiredCapacity === size + 1 && g.Instances.length === size + 1);
  await asg.send(new SetInstanceProtectionCommand({ AutoScalingGroupName: group,
    InstanceIds: [ids[0]], ProtectedFromScaleIn: true }));
  g = await describeGroup(asg);
  check('asg: protection set', g.Instances.find((x) => x.InstanceId === ids[0]).ProtectedFromScaleIn === true);
  const term = await asg.send(new TerminateInstanceInAutoScalingGroupCommand({
    InstanceId: ids[1], ShouldDecrementDesiredCapacity: true }));
  check('asg: termination activity parsed', term.Activity.StatusCode === 'InProgress' &&
    term.Activity.AutoScalingGroupName === group && term.Activity.StartTime instanceof Date &&
    typeof term.Activity.ActivityId === 'string', term.Activity);
  g = await describeGroup(asg);
  check('asg: termination decremented', g.DesiredCapacity === size);
  const h = await asg.send(new SetInstanceHealthCommand({ InstanceId: ids[2], HealthStatus: 'Unhealthy' }));
  check('asg: SetInstanceHealth answered', h.$metadata.httpStatusCode === 200);
  await expectError('asg: above max is ValidationError',
    asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: group, DesiredCapacity: max + 1 })),
    'ValidationError', 400);
  await expectError('asg: unknown instance health is ValidationError',
    asg.send(new SetInstanceHealthCommand({ InstanceId: 'i-0123456789abcdef0', HealthStatus: 'Healthy' })),
    'ValidationError', 400);

  // authentication
  const wrong = clients({ accessKeyId: good.accessKeyId, secretAccessKey: 'wrong' });
  await expectError('asg: wrong secret is SignatureDoesNotMatch',
    wrong.asg.send(new DescribeAutoScalingGroupsCommand({})), 'SignatureDoesNotMatch', 403);
  await expectError('ec2: wrong secret is SignatureDoesNotMatch',
    wrong.ec2.send(new DescribeInstancesCommand({})), 'SignatureDoesNotMatch', 403);
  const unknown = clients({ accessKeyId: 'AKIDUNKNOWNKEY', secretAccessKey: 'x' });
  await expectError('asg: unknown key is InvalidClientTokenId',
    unknown.asg.send(new DescribeAutoScalingGroupsCommand({})), 'InvalidClientTokenId', 403);
  await expectError('ec2: unknown key is AuthFailure',
    unknown.ec2.send(new DescribeInstancesCommand({})), 'AuthFailure', 401);

  // faults: the SDK's own retry rides over throttling and 5xx
  await admin('faults?throttle_every=2');
  const t1 = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }));
  const t2 = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));
  check('sdk retries Throttling / RequestLimitExceeded',
    t1.AutoScalingGroups.length === 1 && t2.Reservations.length > 0 &&
    t1.$metadata.attempts + t2.$metadata.attempts >= 3, [t1.$metadata, t2.$metadata]);
  await admin('faults?throttle_every=0&error_every=2');
  const e1 = await asg.send(new DescribeAutoScalingGroupsCommand({}));
  const e2 = await asg.send(new DescribeAutoScalingGroupsCommand({}));
  check('sdk retries InternalFailure (500)', e1.$metadata.attempts + e2.$metadata.attempts >= 3,
    [e1.$metadata, e2.$metadata]);
  const once = clients(good, 1);
  await admin('faults?error_every=1');
  await expectError('ec2: 500 reaches the SDK as InternalError',
    once.ec2.send(new DescribeInstancesCommand({})), 'InternalError', 500);
  await admin('faults?error_every=0&deny=SetDesiredCapacity,DescribeInstances');
  await expectError('asg: denied is AccessDenied',
    asg.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: group, DesiredCapacity: 1 })),
    'AccessDenied', 403);
  await expectError('ec2: denied is UnauthorizedOperation',
    ec2.send(new DescribeInstancesCommand({})), 'UnauthorizedOperation', 403);
  await admin('faults?deny=');

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.log(`FAIL unexpected: ${err.name}: ${err.message}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
