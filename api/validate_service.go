package api

import "strconv"

func (v *validator) service(s *ServiceSpec) {
	headless := s.ClusterIP == ClusterIPNone
	switch s.Type {
	case ServiceTypeClusterIP:
	case ServiceTypeNodePort, ServiceTypeLoadBalancer:
		if headless {
			v.invalid("spec.clusterIP", s.ClusterIP, "may not be set to 'None' for "+string(s.Type)+" services")
		}
	case "":
		v.required("spec.type", "")
	default:
		v.notSupported("spec.type", s.Type, "ClusterIP", "LoadBalancer", "NodePort")
	}
	if s.ClusterIP != "" && !headless && !validIP(s.ClusterIP) {
		v.invalid("spec.clusterIP", s.ClusterIP, "must be empty, 'None', or a valid IP address")
	}
	for i, ip := range s.ClusterIPs {
		if ip != ClusterIPNone && !validIP(ip) {
			v.invalid(idx("spec.clusterIPs", i), ip, "must be 'None' or a valid IP address")
		}
	}
	if len(s.ClusterIPs) > 0 && s.ClusterIP != "" && s.ClusterIPs[0] != s.ClusterIP {
		v.invalid("spec.clusterIPs", s.ClusterIPs, "first value must match `clusterIP`")
	}
	if len(s.Ports) == 0 && !headless {
		v.required("spec.ports", "")
	}
	names := map[string]bool{}
	type portKey struct {
		port  int32
		proto Protocol
	}
	ports := map[portKey]bool{}
	nodePorts := map[portKey]bool{}
	for i, port := range s.Ports {
		pp := idx("spec.ports", i)
		if port.Name == "" {
			if len(s.Ports) > 1 {
				v.required(pp+".name", "")
			}
		} else {
			v.invalidMsgs(pp+".name", port.Name, DNS1123LabelErrors(port.Name))
			if names[port.Name] {
				v.duplicate(pp+".name", port.Name)
			}
			names[port.Name] = true
		}
		v.protocol(pp+".protocol", port.Protocol)
		v.port(pp+".port", port.Port)
		k := portKey{port.Port, port.Protocol}
		if ports[k] {
			v.duplicate(pp, strconv.Itoa(int(port.Port))+"/"+string(port.Protocol))
		}
		ports[k] = true
		if port.TargetPort.Type == IntOrStringString {
			v.invalidMsgs(pp+".targetPort", port.TargetPort.StrVal, portNameErrors(port.TargetPort.StrVal))
		} else {
			v.port(pp+".targetPort", port.TargetPort.IntVal)
		}
		if port.NodePort != 0 {
			if s.Type != ServiceTypeNodePort && s.Type != ServiceTypeLoadBalancer {
				v.forbidden(pp+".nodePort", "may not be used when `type` is '"+string(s.Type)+"'")
			} else if port.NodePort < NodePortMin || port.NodePort > NodePortMax {
				v.invalid(pp+".nodePort", port.NodePort, "provided port is not in the valid range. The range of valid ports is "+strconv.Itoa(NodePortMin)+"-"+strconv.Itoa(NodePortMax))
			}
			nk := portKey{port.NodePort, port.Protocol}
			if nodePorts[nk] {
				v.duplicate(pp+".nodePort", port.NodePort)
			}
			nodePorts[nk] = true
		}
	}
	v.labels(s.Selector, "spec.selector")
	switch s.SessionAffinity {
	case ServiceAffinityNone:
		if s.SessionAffinityConfig != nil {
			v.forbidden("spec.sessionAffinityConfig", "must not be set when `sessionAffinity` is None")
		}
	case ServiceAffinityClientIP:
		if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > 86400 {
				v.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t, "must be greater than 0 and less than or equal to 86400")
			}
		}
	case "":
		v.required("spec.sessionAffinity", "")
	default:
		v.notSupported("spec.sessionAffinity", s.SessionAffinity, "ClientIP", "None")
	}
	external := s.Type == ServiceTypeNodePort || s.Type == ServiceTypeLoadBalancer
	switch s.ExternalTrafficPolicy {
	case "":
		if external {
			v.required("spec.externalTrafficPolicy", "")
		}
	case ServiceExternalTrafficPolicyCluster, ServiceExternalTrafficPolicyLocal:
		if !external {
			v.invalid("spec.externalTrafficPolicy", s.ExternalTrafficPolicy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'")
		}
	default:
		v.notSupported("spec.externalTrafficPolicy", s.ExternalTrafficPolicy, "Cluster", "Local")
	}
	if p := s.InternalTrafficPolicy; p != nil {
		switch *p {
		case ServiceInternalTrafficPolicyCluster, ServiceInternalTrafficPolicyLocal:
		default:
			v.notSupported("spec.internalTrafficPolicy", *p, "Cluster", "Local")
		}
	}
	if s.LoadBalancerIP != "" {
		if s.Type != ServiceTypeLoadBalancer {
			v.forbidden("spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'")
		} else if !validIP(s.LoadBalancerIP) {
			v.invalid("spec.loadBalancerIP", s.LoadBalancerIP, "must be a valid IP address")
		}
	}
}

func (v *validator) endpoints(e *Endpoints) {
	for i, ss := range e.Subsets {
		sp := idx("subsets", i)
		v.endpointAddresses(ss.Addresses, sp+".addresses")
		v.endpointAddresses(ss.NotReadyAddresses, sp+".notReadyAddresses")
		names := map[string]bool{}
		for j, port := range ss.Ports {
			pp := idx(sp+".ports", j)
			if port.Name != "" {
				v.invalidMsgs(pp+".name", port.Name, DNS1123LabelErrors(port.Name))
				if names[port.Name] {
					v.duplicate(pp+".name", port.Name)
				}
				names[port.Name] = true
			} else if len(ss.Ports) > 1 {
				v.required(pp+".name", "")
			}
			v.port(pp+".port", port.Port)
			v.protocol(pp+".protocol", port.Protocol)
		}
	}
}

func (v *validator) endpointAddresses(as []EndpointAddress, p string) {
	for i, a := range as {
		ap := idx(p, i)
		if !validIP(a.IP) {
			v.invalid(ap+".ip", a.IP, "must be a valid IP address")
		}
		if a.NodeName != nil && *a.NodeName != "" {
			v.invalidMsgs(ap+".nodeName", *a.NodeName, DNS1123SubdomainErrors(*a.NodeName))
		}
		if a.Hostname != "" {
			v.invalidMsgs(ap+".hostname", a.Hostname, DNS1123LabelErrors(a.Hostname))
		}
	}
}

func (v *validator) event(e *Event) {
	switch e.Type {
	case "", EventTypeNormal, EventTypeWarning:
	default:
		v.notSupported("type", e.Type, "Normal", "Warning")
	}
	if e.InvolvedObject.Kind == "" {
		v.required("involvedObject.kind", "")
	}
	if e.InvolvedObject.Namespace != "" && e.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
		v.invalid("involvedObject.namespace", e.InvolvedObject.Namespace, "does not match event.namespace")
	}
	v.nonNegative("count", int64(e.Count))
}
