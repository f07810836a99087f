/*
 * bench_aws: figures for the AWS driver, printed as `| name | value | unit |`
 * rows (scripts/bench.d/aws.sh runs it).
 *
 *   sigv4 signs per second (a DescribeInstances POST with session token)
 *   sigv4 verifies per second (what the local provider does per request)
 *   parsing one 1000-instance DescribeInstances page (libxml2 + our walk)
 *   parsing one 1000-instance DescribeAutoScalingGroups answer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>

#include "drivers/awscloud.h"
#include "drivers/sigv4.h"
#include "model/observed.h"
#include "model/strbuf.h"

#define NINST 1000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char body[] = "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-id"
			   "&Filter.1.Value.1=i-0598c7d356eba48d7&MaxResults=1000";

static void make_req(struct sigv4_header *h, struct sigv4_req *req, size_t nh)
{
	req->method = "POST";
	req->path = "/";
	req->query = "";
	req->headers = h;
	req->nheaders = nh;
	req->payload = body;
	req->payload_len = sizeof(body) - 1;
}

static const char *secret_of(void *ctx, const char *akid)
{
	(void)ctx;
	(void)akid;
	return "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
}

static void bench_sigv4(void)
{
	struct sigv4_header h[5] = {
		{ "Host", "ec2.eu-west-1.amazonaws.com" },
		{ "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
		{ "X-Amz-Date", "20261123T120000Z" },
		{ "X-Amz-Security-Token", "FwoGZXIvYXdzEBYaDHqa0AP1example/session/token+abc==" },
		{ "Authorization", "" },
	};
	struct sigv4_creds cr = { "ASIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				  "FwoGZXIvYXdzEBYaDHqa0AP1example/session/token+abc==" };
	struct sigv4_scope sc = { "eu-west-1", "ec2", "20261123T120000Z" };
	struct strbuf authz = STRBUF_INIT;
	struct sigv4_out out = { NULL, NULL, &authz, NULL };
	struct sigv4_req req;
	long n = 0;
	double t0 = now_s(), t;

	make_req(h, &req, 4);
	do {
		if (sigv4_sign(&req, &cr, &sc, &out, NULL))
			exit(1);
		n++;
	} while ((t = now_s() - t0) < 0.5);
	printf("| aws sigv4 sign | %.0f | signs/s |\n", n / t);
	h[4].value = authz.buf;
	make_req(h, &req, 5);
	n = 0;
	t0 = now_s();
	do {
		if (sigv4_verify(&req, "eu-west-1", "ec2", secret_of, NULL, 1795435200, 1L << 40,
				 NULL))
			exit(1);
		n++;
	} while ((t = now_s() - t0) < 0.5);
	printf("| aws sigv4 verify | %.0f | verifies/s |\n", n / t);
	strbuf_release(&authz);
}

static void gen_pages(struct strbuf *asg, struct strbuf *ec2)
{
	int i;

	strbuf_addstr(asg, "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws."
		      "com/doc/2011-01-01/\"><DescribeAutoScalingGroupsResult><AutoScalingGroups>"
		      "<member><AutoScalingGroupName>bench</AutoScalingGroupName><MinSize>0"
		      "</MinSize><MaxSize>2000</MaxSize><DesiredCapacity>1000</DesiredCapacity>"
		      "<Instances>");
	strbuf_addstr(ec2, "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/"
		      "2016-11-15/\"><requestId>r</requestId><reservationSet>");
	for (i = 0; i < NINST; i++) {
		strbuf_addf(asg, "<member><LaunchTemplate><LaunchTemplateName>lt</LaunchTemplateName>"
			    "<Version>1</Version></LaunchTemplate><HealthStatus>Healthy</HealthStatus>"
			    "<InstanceType>m5.xlarge</InstanceType><AvailabilityZone>eu-west-1a"
			    "</AvailabilityZone><InstanceId>i-%017x</InstanceId><ProtectedFromScaleIn>"
			    "false</ProtectedFromScaleIn><LifecycleState>InService</LifecycleState>"
			    "</member>", i);
		strbuf_addf(ec2, "<item><reservationId>r-%017x</reservationId><ownerId>123456789012"
			    "</ownerId><groupSet/><instancesSet><item><instanceId>i-%017x</instanceId>"
			    "<imageId>ami-0abcdef1234567890</imageId><instanceState><code>16</code>"
			    "<name>running</name></instanceState><privateDnsName>ip-10-0-%d-%d.eu-west"
			    "-1.compute.internal</privateDnsName><instanceType>m5.xlarge</instanceType>"
			    "<launchTime>2026-11-20T16:46:19.000Z</launchTime><placement>"
			    "<availabilityZone>eu-west-1a</availabilityZone><tenancy>default</tenancy>"
			    "</placement><subnetId>subnet-12345678</subnetId><vpcId>vpc-1a2b3c4d</vpcId>"
			    "<privateIpAddress>10.0.%d.%d</privateIpAddress><groupSet><item><groupId>"
			    "sg-e4076980</groupId><groupName>w</groupName></item></groupSet><tagSet>"
			    "<item><key>aws:autoscaling:groupName</key><value>bench</value></item>"
			    "</tagSet><networkInterfaceSet><item><networkInterfaceId>eni-%017x"
			    "</networkInterfaceId><privateIpAddress>10.0.%d.%d</privateIpAddress>"
			    "</item></networkInterfaceSet></item></instancesSet></item>",
			    i, i, i / 250, i % 250, i / 250, i % 250, i, i / 250, i % 250);
	}
	strbuf_addstr(asg, "</Instances></member></AutoScalingGroups>"
		      "</DescribeAutoScalingGroupsResult></DescribeAutoScalingGroupsResponse>");
	strbuf_addstr(ec2, "</reservationSet></DescribeInstancesResponse>");
}

static void bench_parse(void)
{
	struct strbuf asg = STRBUF_INIT, ec2 = STRBUF_INIT;
	struct obs_group g;
	char next[64];
	double t0, ta = 0, te = 0;
	int rounds = 0;

	gen_pages(&asg, &ec2);
	xmlInitParser();
	do {
		xmlDocPtr d;
		double t1;

		obs_group_init(&g);
		t0 = now_s();
		d = xmlReadMemory(asg.buf, (int)asg.len, "a.xml", NULL, XML_PARSE_NONET |
				  XML_PARSE_NOBLANKS);
		if (!d || awscloud_parse_asg(d, "bench", &g, next, sizeof(next), NULL) ||
		    g.ninstances != NINST)
			exit(1);
		xmlFreeDoc(d);
		t1 = now_s();
		ta += t1 - t0;
		d = xmlReadMemory(ec2.buf, (int)ec2.len, "e.xml", NULL, XML_PARSE_NONET |
				  XML_PARSE_NOBLANKS);
		if (!d || awscloud_parse_instances(d, &g, next, sizeof(next), NULL) ||
		    !g.instances[NINST - 1].ec2_seen)
			exit(1);
		xmlFreeDoc(d);
		te += now_s() - t1;
		obs_group_release(&g);
		rounds++;
	} while (ta + te < 1.0);
	printf("| aws parse DescribeAutoScalingGroups, %d instances (%zu KiB) | %.2f | ms |\n",
	       NINST, asg.len / 1024, ta * 1000 / rounds);
	printf("| aws parse DescribeInstances page, %d instances (%zu KiB) | %.2f | ms |\n", NINST,
	       ec2.len / 1024, te * 1000 / rounds);
	strbuf_release(&asg);
	strbuf_release(&ec2);
}

int main(void)
{
	bench_sigv4();
	bench_parse();
	return 0;
}
