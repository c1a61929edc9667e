"""Creates, in a moto_server, what a rollgate service rolls: a VPC with two subnets, an
application load balancer, a target group on port 8080 and N instances registered in it.
Prints {"target_group_arn": ..., "target_group_arns": [...], "instances": [...]} as JSON.

    python3 moto_fixture.py http://127.0.0.1:PORT [N] [NAME] [GROUPS]
    (NAME: web; several fixtures in one moto need names of their own. GROUPS: 1; with 2 a
    second, internal load balancer and target group hold the same instances.)
"""
import json
import sys

import boto3

endpoint = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
name = sys.argv[3] if len(sys.argv) > 3 else "web"
group_count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
ec2 = session.client("ec2", endpoint_url=endpoint)
elbv2 = session.client("elbv2", endpoint_url=endpoint)

vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
           for i, zone in ((1, "a"), (2, "b"))]
lb = elbv2.create_load_balancer(Name=f"{name}-alb", Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
group = elbv2.create_target_group(Name=f"{name}-tg", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
instances = [i["InstanceId"] for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=count, MaxCount=count, SubnetId=subnets[0])["Instances"]]
elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": i, "Port": 8080} for i in instances])
groups = [group]
for extra in range(1, group_count):
    lb2 = elbv2.create_load_balancer(Name=f"{name}-alb-{extra}", Subnets=subnets, Type="application", Scheme="internal")["LoadBalancers"][0]["LoadBalancerArn"]
    group2 = elbv2.create_target_group(Name=f"{name}-tg-{extra}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(LoadBalancerArn=lb2, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "forward", "TargetGroupArn": group2}])
    elbv2.register_targets(TargetGroupArn=group2, Targets=[{"Id": i, "Port": 8080} for i in instances])
    groups.append(group2)
print(json.dumps({"target_group_arn": group, "target_group_arns": groups, "instances": sorted(instances)}))
